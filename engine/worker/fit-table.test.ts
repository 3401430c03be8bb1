/**
 * The README's "Which models fit" table is the fit verdicts' own output (scripts/fit-table.ts),
 * so it can never drift from the code; and `--write` replaces only its block, or adds the
 * section in its place when the markers are missing.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { FileFit } from '../contract/index.ts';
import { END_MARKER, fitBlock, fitCell, fitTable, formatTokens, readFitBlock, readmePath, START_MARKER, withFitBlock } from '../../scripts/fit-table.ts';

describe('the fit table', () => {
  it("README's block is exactly what `node scripts/fit-table.ts --write` writes", async () => {
    const readme = await readFile(readmePath, 'utf8');
    expect(readFitBlock(readme), 'run `node scripts/fit-table.ts --write`').toBe(fitBlock(await fitTable()));
  });

  it('names the verdict and the chosen type with its longest context', () => {
    const fit = (patch: Partial<FileFit>): FileFit => ({
      verdict: 'gpu',
      weightsBytes: 1,
      trainedContextLength: 32768,
      chosen: 'q8_0',
      contexts: [
        { kvType: 'f16', maxContext: 2048 },
        { kvType: 'q8_0', maxContext: 12544 },
        { kvType: 'q4_0', maxContext: 20480 },
      ],
      ...patch,
    });
    expect(fitCell(fit({}))).toBe('GPU · 12k q8_0');
    expect(fitCell(fit({ verdict: 'partial', chosen: 'f16' }))).toBe('Partial · 2k f16');
    expect(fitCell(fit({ verdict: 'too-large', chosen: null }))).toBe('Too large');
    expect([768, 1024, 131072].map(formatTokens)).toEqual(['768', '1k', '128k']);
  });

  it('replaces only the block between the markers, and is idempotent', () => {
    const readme = `# Title\n\ntext\n\n${START_MARKER}\nold table\n${END_MARKER}\n\n## Next\n`;
    const written = withFitBlock(readme, '| new |');
    expect(written).toBe(`# Title\n\ntext\n\n${fitBlock('| new |')}\n\n## Next\n`);
    expect(withFitBlock(written, '| new |')).toBe(written);
  });

  it('without markers, adds the section before the heading that follows the Models section', () => {
    const readme = '# Title\n\n## Use\n\n### Models\n\nDownload models.\n\n### Chats\n\nChat.\n\n## Reliability\n\nTests.\n';
    const written = withFitBlock(readme, '| new |');
    const at = written.indexOf('### Which models fit');
    expect(at).toBeGreaterThan(written.indexOf('Chat.'));
    expect(at).toBeLessThan(written.indexOf('## Reliability'));
    expect(readFitBlock(written)).toBe(fitBlock('| new |'));
    // The rest is untouched.
    expect(written.slice(0, at)).toBe(readme.slice(0, at));
    expect(written.slice(written.indexOf('## Reliability'))).toBe(readme.slice(readme.indexOf('## Reliability')));
    expect(withFitBlock(written, '| new |')).toBe(written);
  });
});

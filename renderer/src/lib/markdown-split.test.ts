import { describe, expect, it } from 'vitest';
import { splitStreaming } from './markdown-split.ts';

const all = (text: string, min = 0) => {
  const { chunks, tail } = splitStreaming(text, min);
  return [...chunks, tail];
};

describe('splitStreaming', () => {
  it('cuts after blank lines', () => {
    expect(all('one\n\ntwo\n\nthr')).toEqual(['one\n\n', 'two\n\n', 'thr']);
  });

  it('keeps everything in the tail without a blank line', () => {
    expect(all('just one paragraph\nstill going')).toEqual(['just one paragraph\nstill going']);
  });

  it('never cuts inside an open code fence', () => {
    expect(all('intro\n\n```js\nconst a = 1;\n\nconst b = 2;\n')).toEqual(['intro\n\n', '```js\nconst a = 1;\n\nconst b = 2;\n']);
  });

  it('cuts after a closed fence', () => {
    expect(all('```\ncode\n\nmore\n```\n\nafter')).toEqual(['```\ncode\n\nmore\n```\n\n', 'after']);
  });

  it('needs the same fence character and at least the same length to close', () => {
    expect(all('````\n```\n\nstill code\n')).toHaveLength(1);
    expect(all('~~~\n```\n\nx')).toHaveLength(1);
  });

  it('treats a trailing unterminated line as growing', () => {
    expect(all('a\n\n ')).toEqual(['a\n\n', ' ']);
  });

  it('makes chunks of at least minChunk characters', () => {
    const text = Array.from({ length: 10 }, (_, i) => `para ${i} ${'x'.repeat(20)}`).join('\n\n');
    const { chunks } = splitStreaming(text, 100);
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) expect(chunk.length).toBeGreaterThanOrEqual(100);
  });

  it('never moves a cut as the text grows, and puts the whole text back', () => {
    const full = Array.from({ length: 30 }, (_, i) => (i % 5 === 0 ? '```py\nx = 1\n\ny = 2\n```' : `para ${i} ${'y'.repeat(i * 7)}`)).join('\n\n');
    let previous: readonly string[] = [];
    for (let end = 0; end <= full.length; end += 13) {
      const text = full.slice(0, end);
      const { chunks, tail } = splitStreaming(text, 64);
      expect(chunks.join('') + tail).toBe(text);
      expect(chunks.slice(0, previous.length)).toEqual(previous);
      previous = chunks;
    }
  });
});

import { describe, expect, it } from 'vitest';
import { lineSplitter, spawnRunner } from './runner.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return check();
}

describe('lineSplitter', () => {
  it('splits on any line break, carriage returns too, and flushes the last line', () => {
    const lines: string[] = [];
    const split = lineSplitter((line) => lines.push(line));
    split.push('[1/3] a\n[2/');
    split.push('3] b\r[3/3] c\r\nlast');
    expect(lines).toEqual(['[1/3] a', '[2/3] b', '[3/3] c']);
    split.end();
    expect(lines.at(-1)).toBe('last');
  });
});

describe.skipIf(process.platform === 'win32')('spawnRunner', () => {
  it('passes the output line by line and the exit code', async () => {
    const lines: string[] = [];
    const end = await spawnRunner.run('sh', ['-c', 'echo one; echo two >&2; exit 3'], { onLine: (line) => lines.push(line) });
    expect(end).toEqual({ code: 3, signal: null });
    expect(lines.sort()).toEqual(['one', 'two']);
  });

  it('says a command that does not exist could not be started', async () => {
    const end = await spawnRunner.run('hearth-no-such-command', [], { onLine: () => undefined });
    expect(end.startError).toMatch(/ENOENT/);
  });

  it('a cancel kills the command and what it started (its process group)', async () => {
    const controller = new AbortController();
    let grandchild = 0;
    const running = spawnRunner.run('sh', ['-c', 'sleep 60 & echo $!; wait'], {
      signal: controller.signal,
      nice: 5,
      onLine: (line) => {
        grandchild = Number(line);
      },
    });
    expect(await until(() => grandchild > 0, 5000)).toBe(true);
    expect(alive(grandchild)).toBe(true);
    controller.abort();
    const end = await running;
    expect(end.signal ?? end.code).not.toBe(0);
    expect(await until(() => !alive(grandchild), 5000)).toBe(true);
  });
});

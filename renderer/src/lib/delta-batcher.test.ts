import { describe, expect, it } from 'vitest';
import { createDeltaBatcher, type DeltaBatch } from './delta-batcher.ts';

function manual() {
  const queue: (() => void)[] = [];
  return { schedule: (cb: () => void) => void queue.push(cb), run: () => queue.splice(0).forEach((cb) => cb()), queue };
}

describe('createDeltaBatcher', () => {
  it('coalesces many deltas into one apply per frame', () => {
    const frames = manual();
    const applied: (readonly DeltaBatch[])[] = [];
    const batcher = createDeltaBatcher((b) => applied.push(b), frames.schedule);
    for (let i = 0; i < 1000; i++) batcher.push('c1', 'm1', 'x');
    batcher.push('c1', 'm2', 'y');
    expect(frames.queue).toHaveLength(1);
    expect(applied).toHaveLength(0);
    frames.run();
    expect(applied).toEqual([
      [
        { chatId: 'c1', messageId: 'm1', text: 'x'.repeat(1000) },
        { chatId: 'c1', messageId: 'm2', text: 'y' },
      ],
    ]);
  });

  it('keeps order within a message and schedules again after a flush', () => {
    const frames = manual();
    const applied: string[] = [];
    const batcher = createDeltaBatcher((b) => applied.push(b.map((d) => d.text).join('|')), frames.schedule);
    batcher.push('c', 'm', 'Hel');
    batcher.push('c', 'm', 'lo');
    frames.run();
    batcher.push('c', 'm', ' world');
    expect(frames.queue).toHaveLength(1);
    frames.run();
    expect(applied).toEqual(['Hello', ' world']);
  });

  it('flushes synchronously on demand, and a later frame is then a no-op', () => {
    const frames = manual();
    const applied: string[] = [];
    const batcher = createDeltaBatcher((b) => applied.push(b[0]?.text ?? ''), frames.schedule);
    batcher.push('c', 'm', 'a');
    batcher.flush();
    expect(applied).toEqual(['a']);
    expect(batcher.pending).toBe(0);
    frames.run();
    expect(applied).toEqual(['a']);
  });

  it('ignores empty deltas', () => {
    const frames = manual();
    const batcher = createDeltaBatcher(() => {}, frames.schedule);
    batcher.push('c', 'm', '');
    expect(frames.queue).toHaveLength(0);
  });
});

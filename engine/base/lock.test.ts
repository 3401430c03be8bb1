import { describe, expect, it } from 'vitest';
import { Lock } from './lock.ts';

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

describe('Lock', () => {
  it('runs tasks one at a time in arrival order, never interleaving across awaits', async () => {
    const lock = new Lock('test');
    const trace: string[] = [];
    const task = (name: string, steps: number) => async () => {
      trace.push(`${name} start`);
      for (let i = 0; i < steps; i++) await tick();
      trace.push(`${name} end`);
      return name;
    };
    const results = await Promise.all([lock.run(task('a', 3)), lock.run(task('b', 1)), lock.run(task('c', 0))]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(trace).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
  });

  it('rejects only the failing task\'s caller; the next task still runs', async () => {
    const lock = new Lock('test');
    const failed = lock.run(async () => {
      await tick();
      throw new Error('boom');
    });
    const thrownSync = lock.run(() => {
      throw new Error('sync boom');
    });
    const next = lock.run(() => 'ran');
    await expect(failed).rejects.toThrow('boom');
    await expect(thrownSync).rejects.toThrow('sync boom');
    await expect(next).resolves.toBe('ran');
  });

  it('counts tasks queued or running', async () => {
    const lock = new Lock('test');
    expect(lock.name).toBe('test');
    let release!: () => void;
    const held = lock.run(() => new Promise<void>((resolve) => (release = resolve)));
    const queued = lock.run(() => undefined);
    expect(lock.pending).toBe(2);
    await tick();
    release();
    await Promise.all([held, queued]);
    await tick();
    expect(lock.pending).toBe(0);
  });
});

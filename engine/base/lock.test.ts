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
  it('runs waiting tasks by priority, higher first, in arrival order within a priority', async () => {
    const lock = new Lock('test');
    const order: string[] = [];
    let release!: () => void;
    const held = lock.run(() => new Promise<void>((resolve) => (release = resolve)));
    const task = (name: string) => () => {
      order.push(name);
    };
    const queued = [
      lock.run(task('low 1'), { priority: -1 }),
      lock.run(task('default 1')),
      lock.run(task('high 1'), { priority: 1 }),
      lock.run(task('default 2'), { priority: 0 }),
      lock.run(task('high 2'), { priority: 1 }),
      lock.run(task('low 2'), { priority: -1 }),
    ];
    // The running task is not interrupted: nothing else started while it holds the lock.
    await tick();
    expect(order).toEqual([]);
    release();
    await Promise.all([held, ...queued]);
    expect(order).toEqual(['high 1', 'high 2', 'default 1', 'default 2', 'low 1', 'low 2']);
  });

  it('lets a task queued later with a higher priority pass only tasks still waiting', async () => {
    const lock = new Lock('test');
    const order: string[] = [];
    const step = (name: string) => async () => {
      order.push(`${name} start`);
      await tick();
      order.push(`${name} end`);
    };
    const first = lock.run(step('api 1'));
    const second = lock.run(step('api 2'));
    await tick();
    // api 1 is running now; chat arrives after api 2 but runs before it.
    const chat = lock.run(step('chat'), { priority: 1 });
    await Promise.all([first, second, chat]);
    expect(order).toEqual(['api 1 start', 'api 1 end', 'chat start', 'chat end', 'api 2 start', 'api 2 end']);
  });
});

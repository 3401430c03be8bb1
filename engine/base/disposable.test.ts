import { describe, expect, it } from 'vitest';
import { DisposableStore, toDisposable } from './disposable.ts';

describe('toDisposable', () => {
  it('runs its cleanup once however often it is disposed', () => {
    let runs = 0;
    const d = toDisposable(() => runs++);
    d.dispose();
    d.dispose();
    expect(runs).toBe(1);
  });
});

describe('DisposableStore', () => {
  it('disposes its items newest first, once', () => {
    const order: string[] = [];
    const store = new DisposableStore();
    for (const name of ['a', 'b', 'c']) store.add(toDisposable(() => order.push(name)));
    expect(store.disposed).toBe(false);
    store.dispose();
    store.dispose();
    expect(order).toEqual(['c', 'b', 'a']);
    expect(store.disposed).toBe(true);
  });

  it('disposes an item added after it was disposed at once, and still returns it', () => {
    const store = new DisposableStore();
    store.dispose();
    let disposed = false;
    const item = toDisposable(() => (disposed = true));
    expect(store.add(item)).toBe(item);
    expect(disposed).toBe(true);
  });

  it('disposes every item when one throws, then rethrows the first error', () => {
    const order: string[] = [];
    const store = new DisposableStore();
    store.add(toDisposable(() => order.push('first')));
    store.add({
      dispose() {
        order.push('older throws');
        throw new Error('older');
      },
    });
    store.add({
      dispose() {
        order.push('newest throws');
        throw new Error('newest');
      },
    });
    expect(() => store.dispose()).toThrow('newest');
    expect(order).toEqual(['newest throws', 'older throws', 'first']);
  });
});

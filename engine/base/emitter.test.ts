import { describe, expect, it } from 'vitest';
import { Emitter } from './emitter.ts';

describe('Emitter', () => {
  it('delivers to listeners until their subscription is disposed', () => {
    const emitter = new Emitter<number>();
    const seen: number[] = [];
    const subscription = emitter.on((n) => seen.push(n));
    expect(emitter.size).toBe(1);
    emitter.emit(1);
    subscription.dispose();
    subscription.dispose();
    emitter.emit(2);
    expect(seen).toEqual([1]);
    expect(emitter.size).toBe(0);
  });

  it('reports a throwing listener and still delivers to the others', () => {
    const errors: unknown[] = [];
    const emitter = new Emitter<string>((error) => errors.push(error));
    const seen: string[] = [];
    emitter.on(() => {
      throw new Error('listener bug');
    });
    emitter.on((s) => seen.push(s));
    emitter.emit('x');
    expect(seen).toEqual(['x']);
    expect(errors).toHaveLength(1);
  });

  it('drops every listener when disposed', () => {
    const emitter = new Emitter<void>();
    let calls = 0;
    emitter.on(() => calls++);
    emitter.dispose();
    emitter.emit();
    expect(calls).toBe(0);
    expect(emitter.size).toBe(0);
  });
});

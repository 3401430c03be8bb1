import { describe, expect, it } from 'vitest';
import { mapOf, msg } from '../../../test/support/renderer/fixtures.ts';
import { activePathIds, branchInfo, childrenIndex, latestLeafUnder, resolveLeaf, streamingMessageId } from './tree.ts';

// u1 → a1 → u2 → a2
//    ↘ a1b (regenerated)     u1b (edited, sibling of u1) → a3
const u1 = msg('u1', null);
const a1 = msg('a1', 'u1', 'assistant');
const u2 = msg('u2', 'a1');
const a2 = msg('a2', 'u2', 'assistant');
const a1b = msg('a1b', 'u1', 'assistant');
const u1b = msg('u1b', null);
const a3 = msg('a3', 'u1b', 'assistant');
const all = mapOf(u1, a1, u2, a2, a1b, u1b, a3);

describe('activePathIds', () => {
  it('walks from the active leaf to the root', () => {
    expect(activePathIds(all, 'a2')).toEqual(['u1', 'a1', 'u2', 'a2']);
    expect(activePathIds(all, 'a1b')).toEqual(['u1', 'a1b']);
    expect(activePathIds(all, 'a3')).toEqual(['u1b', 'a3']);
  });

  it('falls back to the newest leaf when the active leaf is unknown or null', () => {
    expect(activePathIds(all, null)).toEqual(['u1b', 'a3']);
    expect(activePathIds(all, 'missing')).toEqual(['u1b', 'a3']);
    expect(activePathIds({}, null)).toEqual([]);
  });

  it('stops at a missing parent and survives a cycle', () => {
    const orphan = mapOf(msg('x', 'gone', 'assistant'));
    expect(activePathIds(orphan, 'x')).toEqual(['x']);
    const loop = mapOf({ ...msg('p', 'q'), parentId: 'q' }, { ...msg('q', 'p'), parentId: 'p' });
    expect(activePathIds(loop, 'p')).toHaveLength(2);
  });
});

describe('branchInfo', () => {
  it('numbers siblings oldest first', () => {
    expect(branchInfo(all, 'a1')).toEqual({ position: 1, count: 2, previousId: null, nextId: 'a1b' });
    expect(branchInfo(all, 'a1b')).toEqual({ position: 2, count: 2, previousId: 'a1', nextId: null });
    expect(branchInfo(all, 'u1b')).toEqual({ position: 2, count: 2, previousId: 'u1', nextId: null });
  });

  it('is 1 of 1 for an only child or an unknown id', () => {
    expect(branchInfo(all, 'u2')).toEqual({ position: 1, count: 1, previousId: null, nextId: null });
    expect(branchInfo(all, 'nope').count).toBe(1);
  });
});

describe('latestLeafUnder / resolveLeaf', () => {
  it('follows the newest child down to a leaf', () => {
    expect(latestLeafUnder(all, 'u1')).toBe('a1b');
    expect(latestLeafUnder(all, 'a1')).toBe('a2');
    expect(latestLeafUnder(all, 'a2')).toBe('a2');
  });

  it('keeps a known active leaf', () => {
    expect(resolveLeaf(all, 'a1')).toBe('a1');
  });
});

describe('childrenIndex', () => {
  it('is cached per messages record', () => {
    expect(childrenIndex(all)).toBe(childrenIndex(all));
    expect(childrenIndex({ ...all })).not.toBe(childrenIndex(all));
  });
});

describe('streamingMessageId', () => {
  it('finds the streaming message', () => {
    expect(streamingMessageId(all)).toBeNull();
    expect(streamingMessageId({ ...all, s: msg('s', 'a2', 'assistant', { status: 'streaming' }) })).toBe('s');
  });
});

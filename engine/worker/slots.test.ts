/**
 * The slot table without a model: which slot a chat gets, and that a swap saves a dirty slot
 * under its owner's manifest before another chat takes it.
 */
import { describe, expect, it } from 'vitest';
import { chooseSlot, SlotTable, type Slot, type SlotView } from './slots.ts';

const view = (index: number, chatId: string | null, lastUsed: number): SlotView => ({ index, chatId, lastUsed });

describe('chooseSlot', () => {
  it('takes the slot that holds the chat, even when others are free or older', () => {
    expect(chooseSlot([view(0, null, 0), view(1, 'b', 1), view(2, 'a', 9)], 'a')).toBe(2);
  });

  it('takes a free slot before a used one, the least recently used free one first', () => {
    expect(chooseSlot([view(0, 'b', 1), view(1, null, 0), view(2, null, 0)], 'a')).toBe(1);
    // Slot 2 was freed (its chat deleted) after slot 1 was: slot 1 goes first.
    expect(chooseSlot([view(0, 'b', 1), view(1, null, 3), view(2, null, 5)], 'a')).toBe(1);
    expect(chooseSlot([view(0, 'b', 1), view(1, null, 7), view(2, 'c', 2)], 'a')).toBe(1);
  });

  it('else takes the least recently used slot (lowest index on a tie)', () => {
    expect(chooseSlot([view(0, 'b', 5), view(1, 'c', 2), view(2, 'd', 4)], 'a')).toBe(1);
    expect(chooseSlot([view(0, 'b', 2), view(1, 'c', 2)], 'a')).toBe(0);
  });

  it('refuses an empty table', () => {
    expect(() => chooseSlot([], 'a')).toThrow();
  });
});

/** A sequence stand-in: only its token count matters to the table. */
interface FakeResident {
  readonly name: string;
  tokens: number;
}

function table(count: number, saveResult: (resident: FakeResident) => number | null = (r) => r.tokens) {
  const log: string[] = [];
  const residents = Array.from({ length: count }, (_, i): FakeResident => ({ name: `seq${i}`, tokens: 0 }));
  let slots: SlotTable<FakeResident> | null = null;
  slots = new SlotTable<FakeResident>({
    residents,
    tokens: (r) => r.tokens,
    save: async (resident, manifestId, chatId) => {
      const slot = slots!.slots.find((s) => s.resident === resident)!;
      // What the slot looks like while it is saved: still its owner's, in state 'saving'.
      log.push(`save ${resident.name} ${manifestId} chat=${chatId} holder=${slot.chatId} state=${slot.state}`);
      await Promise.resolve();
      return saveResult(resident);
    },
  });
  return { slots, log, residents };
}

/** What one generation does to the table (turn.ts): acquire, evaluate, finish the turn, save. */
async function turn(slots: SlotTable<FakeResident>, chatId: string, branch: string | null, tokensAfter: number): Promise<Slot<FakeResident>> {
  const { slot } = await slots.acquire(chatId);
  slots.kept(slot, slot.chatId === chatId ? slot.savedTokens : 0);
  slot.resident.tokens = tokensAfter;
  slots.turnDone(slot, branch === null ? null : `${chatId}/${branch}`);
  if (branch !== null) await slots.save(slot);
  return slot;
}

describe('SlotTable', () => {
  it('keeps each chat in its own slot while there are enough', async () => {
    const { slots } = table(2);
    const a = await slots.acquire('A');
    const b = await slots.acquire('B');
    expect([a.slot.index, b.slot.index]).toEqual([0, 1]);
    expect(a.took).toBeNull();
    expect(b.took).toBeNull();
    const again = await slots.acquire('A');
    expect(again).toMatchObject({ took: null, lost: 0 });
    expect(again.slot).toBe(a.slot);
  });

  it('saves a dirty slot under its owner\'s manifest before another chat takes it', async () => {
    let failing = true;
    const { slots, log } = table(1, (r) => (failing ? null : r.tokens));
    // A's turn: its save fails (a paused store), so the slot holds 120 unsaved tokens.
    const slot = await turn(slots, 'A', 'a1', 120);
    expect(slots.isDirty(slot)).toBe(true);
    expect(slot.savedTokens).toBe(0);
    failing = false;
    log.length = 0;
    const taken = await slots.acquire('B');
    // The save ran first, while the slot was still A's, under A's last manifest.
    expect(log).toEqual(['save seq0 A/a1 chat=A holder=A state=saving']);
    expect(taken).toMatchObject({ took: 'A', lost: 0 });
    expect(slot).toMatchObject({ chatId: 'B', manifestId: null, savedTokens: 120, state: 'idle' });
    expect(slots.isDirty(slot)).toBe(false);
  });

  it('does not save a clean slot again on a swap', async () => {
    const { slots, log } = table(1);
    await turn(slots, 'A', 'a1', 80);
    expect(log).toHaveLength(1);
    await slots.acquire('B');
    expect(log).toHaveLength(1);
  });

  it('swaps anyway when the save fails, and the chat coming back learns how many tokens left memory', async () => {
    const { slots, log } = table(1, () => null);
    await turn(slots, 'A', 'a1', 50);
    const b = await slots.acquire('B');
    expect(b.took).toBe('A');
    expect(log).toHaveLength(2);
    b.slot.resident.tokens = 70;
    const back = await slots.acquire('A');
    expect(back).toMatchObject({ took: 'B', lost: 50 });
    // Once it is back, nothing more is lost; B lost its 70.
    expect((await slots.acquire('A')).lost).toBe(0);
    expect((await slots.acquire('B')).lost).toBe(70);
  });

  it('takes the least recently used slot when all are held', async () => {
    const { slots } = table(2);
    await turn(slots, 'A', 'a1', 10);
    await turn(slots, 'B', 'b1', 10);
    await turn(slots, 'A', 'a2', 20);
    const c = await slots.acquire('C');
    expect(c).toMatchObject({ took: 'B' });
    expect(c.slot.index).toBe(1);
  });

  it('never saves a turn without a branch, or tokens a later prompt no longer shares', async () => {
    const { slots, log } = table(1);
    const slot = await turn(slots, 'A', 'a1', 100);
    expect(slot.savedTokens).toBe(100);
    // A regenerate keeps only 60 of them, and its turn has no branch to be saved under.
    slots.kept(slot, 60);
    expect(slot.savedTokens).toBe(60);
    slot.resident.tokens = 90;
    slots.turnDone(slot, null);
    expect(slots.isDirty(slot)).toBe(false);
    await slots.acquire('B');
    expect(log).toEqual(['save seq0 A/a1 chat=A holder=A state=saving']);
  });

  it('re-saves tokens beyond what a restore loaded', async () => {
    const { slots } = table(1, () => null);
    const { slot } = await slots.acquire('A');
    slot.resident.tokens = 300;
    slots.restored(slot, 256);
    slots.turnDone(slot, 'A/a2');
    expect(slots.isDirty(slot)).toBe(true);
  });

  it('frees the slots of a deleted chat without saving them', async () => {
    const { slots, log } = table(2, () => null);
    await turn(slots, 'A', 'a1', 40);
    await turn(slots, 'B', 'b1', 40);
    log.length = 0;
    slots.release('A');
    expect(slots.slots[0]).toMatchObject({ chatId: null, manifestId: null });
    // The freed slot goes first, before B's (older) one, and nothing of A is saved.
    const c = await slots.acquire('C');
    expect(c).toMatchObject({ took: null });
    expect(c.slot.index).toBe(0);
    expect(log).toEqual([]);
    await slots.saveDirty(Number.POSITIVE_INFINITY);
    expect(log).toEqual(['save seq1 B/b1 chat=B holder=B state=saving']);
  });

  it('saves every dirty slot at quit, least recently used first, and starts none after the deadline', async () => {
    let failing = true;
    const { slots, log } = table(3, (r) => (failing ? null : r.tokens));
    await turn(slots, 'A', 'a1', 10);
    await turn(slots, 'B', 'b1', 10);
    await turn(slots, 'C', null, 10);
    failing = false;
    log.length = 0;
    await slots.saveDirty(performance.now() - 1);
    expect(log).toEqual([]);
    await slots.saveDirty(Number.POSITIVE_INFINITY);
    expect(log).toEqual(['save seq0 A/a1 chat=A holder=A state=saving', 'save seq1 B/b1 chat=B holder=B state=saving']);
    expect(slots.slots.map((s) => slots.isDirty(s))).toEqual([false, false, false]);
  });
});

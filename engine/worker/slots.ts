/**
 * The slot table: the context's N resident sequences, each bound to the chat whose KV it holds,
 * so switching between up to N chats costs nothing. Taking a slot from another chat is a
 * **swap** (see `chooseSlot`): a dirty slot (tokens beyond what the store has: the turn's save
 * failed, was skipped, or is pending) is saved first under its owner's manifest, so that chat
 * restores from disk later instead of re-reading; a failed save does not block the swap.
 * The table is only used under the engine's one FIFO lock (runtime.ts), so at most one slot is
 * ever not 'idle'. It knows nothing of node-llama-cpp: a slot's resident is opaque, and counting
 * and saving tokens are injected, so the choice and swap rules are unit-tested.
 */
import type { SlotState } from '../protocol.ts';

export type { SlotState } from '../protocol.ts';

export interface Slot<T> {
  readonly index: number;
  /** The sequence and whatever drives it (runtime-state.ts `Resident`: its LlamaChat). */
  readonly resident: T;
  /** The chat it is bound to; null when free (never used, or its chat was deleted). */
  chatId: string | null;
  /**
   * The manifest (`<chatId>/<branchId>`) its tokens are saved under: the last turn generated in
   * it. null when nothing in it may be saved (a turn without a branch, a failed turn, a swap in).
   */
  manifestId: string | null;
  /** A counter, not a time: larger is more recent; 0 = never used. */
  lastUsed: number;
  /** The sequence's first `savedTokens` tokens are known to be in the store. */
  savedTokens: number;
  state: SlotState;
}

/** What the choice looks at. */
export type SlotView = Pick<Slot<unknown>, 'index' | 'chatId' | 'lastUsed'>;

/**
 * The slot a generation of `chatId` takes: the one that holds it; else the least recently used
 * free slot (a never-used one first); else the least recently used slot. Ties: lowest index.
 */
export function chooseSlot(slots: readonly SlotView[], chatId: string): number {
  if (slots.length === 0) throw new Error('chooseSlot needs at least one slot');
  const held = slots.find((s) => s.chatId === chatId);
  if (held) return held.index;
  const lru = (candidates: readonly SlotView[]): SlotView | undefined =>
    candidates.reduce<SlotView | undefined>((best, s) => (best === undefined || s.lastUsed < best.lastUsed ? s : best), undefined);
  return (lru(slots.filter((s) => s.chatId === null)) ?? lru(slots))!.index;
}

export interface SlotTableOptions<T> {
  readonly residents: readonly T[];
  /** Tokens the resident's sequence holds now. */
  readonly tokens: (resident: T) => number;
  /**
   * Saves the resident's clean prefix under `manifestId` (chat `chatId`); resolves to the tokens
   * the store now holds of it, or null when nothing was saved (no store, failure). Never rejects.
   */
  readonly save: (resident: T, manifestId: string, chatId: string) => Promise<number | null>;
}

export interface Acquired<T> {
  readonly slot: Slot<T>;
  /** The chat the slot was taken from (a swap), or null. */
  readonly took: string | null;
  /**
   * Tokens of this chat that left memory when its slot went to another chat since its last turn
   * (0 when none did), so the readout can say why they were read again.
   */
  readonly lost: number;
}

/** How many swapped-out chats are remembered for the readout (oldest forgotten first). */
const EVICTED_MEMORY = 1024;

export class SlotTable<T> {
  readonly slots: readonly Slot<T>[];
  readonly #options: SlotTableOptions<T>;
  #tick = 0;
  /** Chats whose slot went to another chat, oldest first: the tokens it held of them. */
  readonly #evicted = new Map<string, number>();

  constructor(options: SlotTableOptions<T>) {
    if (options.residents.length === 0) throw new Error('A slot table needs at least one slot');
    this.#options = options;
    this.slots = options.residents.map((resident, index) => ({ index, resident, chatId: null, manifestId: null, lastUsed: 0, savedTokens: 0, state: 'idle' }));
  }

  /** Holds tokens beyond what the store has, and may save them. */
  isDirty(slot: Slot<T>): boolean {
    return slot.manifestId !== null && slot.chatId !== null && this.#options.tokens(slot.resident) > slot.savedTokens;
  }

  /**
   * Binds a slot to `chatId` (see `chooseSlot`). A swap saves the slot's dirty tokens under its
   * owner's manifest first. Call under the engine lock.
   */
  async acquire(chatId: string): Promise<Acquired<T>> {
    const slot = this.slots[chooseSlot(this.slots, chatId)]!;
    slot.lastUsed = ++this.#tick;
    if (slot.chatId === chatId) return { slot, took: null, lost: 0 };
    const took = slot.chatId;
    if (took !== null) {
      if (this.isDirty(slot)) await this.save(slot);
      this.#remember(took, this.#options.tokens(slot.resident));
    }
    const lost = this.#evicted.get(chatId) ?? 0;
    this.#evicted.delete(chatId);
    slot.chatId = chatId;
    // The tokens still in it are the other chat's: nothing to save under this chat's name yet.
    slot.manifestId = null;
    return { slot, took, lost };
  }

  /**
   * Saves the slot's tokens under its manifest (state 'saving'); true when the store now holds
   * them all. A slot without a manifest has nothing to save.
   */
  async save(slot: Slot<T>): Promise<boolean> {
    const { manifestId, chatId } = slot;
    if (manifestId === null || chatId === null) return false;
    const saved = await this.during(slot, 'saving', () => this.#options.save(slot.resident, manifestId, chatId));
    if (saved === null) return false;
    slot.savedTokens = saved;
    return saved >= this.#options.tokens(slot.resident);
  }

  /** Saves every dirty slot, least recently used first; none is started after `deadline` (performance.now()). */
  async saveDirty(deadline: number): Promise<void> {
    for (const slot of [...this.slots].sort((a, b) => a.lastUsed - b.lastUsed)) {
      if (performance.now() >= deadline) return;
      if (this.isDirty(slot)) await this.save(slot);
    }
  }

  /** Runs `task` with the slot in `state`, then back to 'idle'. */
  async during<R>(slot: Slot<T>, state: SlotState, task: () => Promise<R>): Promise<R> {
    slot.state = state;
    try {
      return await task();
    } finally {
      slot.state = 'idle';
    }
  }

  /** The sequence was replaced by `tokens` tokens loaded from the store. */
  restored(slot: Slot<T>, tokens: number): void {
    slot.savedTokens = tokens;
  }

  /** Only the first `tokens` tokens stay in the sequence (the rest is erased and re-evaluated). */
  kept(slot: Slot<T>, tokens: number): void {
    slot.savedTokens = Math.min(slot.savedTokens, tokens);
  }

  /** A turn ended: what the sequence holds now belongs under `manifestId` (null: not to be saved). */
  turnDone(slot: Slot<T>, manifestId: string | null): void {
    slot.manifestId = manifestId;
  }

  /** The chat was deleted: its slots become free, and nothing of it is saved again. */
  release(chatId: string): void {
    this.#evicted.delete(chatId);
    for (const slot of this.slots) {
      if (slot.chatId !== chatId) continue;
      slot.chatId = null;
      slot.manifestId = null;
    }
  }

  #remember(chatId: string, tokens: number): void {
    this.#evicted.delete(chatId);
    this.#evicted.set(chatId, tokens);
    if (this.#evicted.size > EVICTED_MEMORY) this.#evicted.delete(this.#evicted.keys().next().value!);
  }
}

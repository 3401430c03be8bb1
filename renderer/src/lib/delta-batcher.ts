/**
 * Coalesces `message.delta` events so the store (and React) updates at most once per frame.
 * Long replies stream thousands of tokens; one render per token would drown the page.
 */
export interface DeltaBatch {
  readonly chatId: string;
  readonly messageId: string;
  readonly text: string;
}

export interface DeltaBatcher {
  push(chatId: string, messageId: string, delta: string): void;
  /** Applies what is pending now; used before any event that must see the text in order. */
  flush(): void;
  readonly pending: number;
}

/**
 * @param apply receives every message's text since the last flush, in first-seen order.
 * @param schedule runs a callback later, once (requestAnimationFrame in the page).
 */
export function createDeltaBatcher(
  apply: (batch: readonly DeltaBatch[]) => void,
  schedule: (callback: () => void) => void,
): DeltaBatcher {
  let pending = new Map<string, { chatId: string; parts: string[] }>();
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    if (pending.size === 0) return;
    const batch: DeltaBatch[] = [];
    for (const [messageId, entry] of pending) batch.push({ chatId: entry.chatId, messageId, text: entry.parts.join('') });
    pending = new Map();
    apply(batch);
  };

  return {
    push(chatId, messageId, delta) {
      if (delta === '') return;
      const entry = pending.get(messageId);
      if (entry) entry.parts.push(delta);
      else pending.set(messageId, { chatId, parts: [delta] });
      if (!scheduled) {
        scheduled = true;
        schedule(flush);
      }
    },
    flush,
    get pending() {
      return pending.size;
    },
  };
}

/** requestAnimationFrame, falling back to a timer where frames do not run (hidden pages, tests). */
export function frameScheduler(callback: () => void): void {
  if (typeof requestAnimationFrame === 'function' && typeof document !== 'undefined' && !document.hidden) {
    requestAnimationFrame(() => callback());
  } else {
    setTimeout(callback, 100);
  }
}

/**
 * Deterministic, varied text for model tests: the tiny test model's vocabulary is bytes, so this
 * is about one token per character, and `seed` gives chats that differ (or share a prefix).
 */
export function seededText(seed: number, length: number): string {
  const words = ['the', 'sea', 'was', 'calm', 'and', 'grey', 'under', 'a', 'low', 'sky', 'while', 'boats', 'drifted', 'home'];
  let s = seed;
  const out: string[] = [];
  let size = 0;
  while (size < length * 2) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const word = words[s % words.length]!;
    out.push(word);
    size += word.length + 1;
  }
  return out.join(' ');
}

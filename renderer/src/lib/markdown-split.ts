/**
 * While a reply streams, re-parsing all of it every frame costs O(length) per frame, and a
 * long reply streams thousands of tokens. Text before a blank line (outside a code fence) no
 * longer changes, so it is cut into frozen chunks, each parsed once (memoized by its text);
 * only the text after the last cut is parsed again on each frame. The finished message is
 * parsed whole, so the rare markdown that spans a blank line (loose lists, reference links)
 * comes out right in the end.
 */

export interface StreamingSplit {
  /** Frozen chunks: once a chunk appears it never changes, however the text grows. */
  readonly chunks: readonly string[];
  /** Everything after the last cut. */
  readonly tail: string;
}

/**
 * @param minChunk the least characters per frozen chunk: cuts are only made at blank lines
 *   at least this far from the previous cut. Fewer, larger chunks mean fewer components; the
 *   decision depends only on text before the cut, so earlier cuts never move as text grows.
 */
export function splitStreaming(text: string, minChunk = 1024): StreamingSplit {
  const chunks: string[] = [];
  let fence: { char: string; length: number } | null = null;
  let chunkStart = 0;
  let lineStart = 0;
  while (lineStart < text.length) {
    const newline = text.indexOf('\n', lineStart);
    // An unterminated last line may still grow; it never ends a block.
    if (newline === -1) break;
    const line = text.slice(lineStart, newline);
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (marker) {
      const run = marker[1] ?? '';
      const char = run.charAt(0);
      if (fence === null) fence = { char, length: run.length };
      else if (char === fence.char && run.length >= fence.length && line.trim() === run) fence = null;
    } else if (fence === null && line.trim() === '' && newline + 1 - chunkStart >= minChunk) {
      chunks.push(text.slice(chunkStart, newline + 1));
      chunkStart = newline + 1;
    }
    lineStart = newline + 1;
  }
  return { chunks, tail: text.slice(chunkStart) };
}

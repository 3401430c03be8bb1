/**
 * Reading a build's output: the progress ninja and make print on each step, and the last lines
 * kept for an error message (a compiler error is at the end of the output, not the start).
 */

/** A step a build tool reported: `fraction` of its work done, with ninja's counts when it gave them. */
export interface BuildStep {
  readonly fraction: number;
  readonly done?: number;
  readonly total?: number;
}

/**
 * ninja's "[n/m] Building CXX object …" or make's "[ nn%] Building …", else null. A ninja count
 * of 0 total (an up-to-date build) is done.
 */
export function parseBuildStep(line: string): BuildStep | null {
  const ninja = /^\s*\[(\d+)\/(\d+)\]/.exec(line);
  if (ninja) {
    const done = Number(ninja[1]);
    const total = Number(ninja[2]);
    return { fraction: total > 0 ? Math.min(1, done / total) : 1, done, total };
  }
  const make = /^\s*\[\s*(\d{1,3})%\]/.exec(line);
  if (make) return { fraction: Math.min(1, Number(make[1]) / 100) };
  return null;
}

/** The last `limit` non-blank lines seen. */
export class OutputTail {
  readonly #limit: number;
  readonly #lines: string[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  add(line: string): void {
    if (line.trim() === '') return;
    this.#lines.push(line);
    if (this.#lines.length > this.#limit) this.#lines.shift();
  }

  get lines(): readonly string[] {
    return this.#lines;
  }

  get text(): string {
    return this.#lines.join('\n');
  }
}

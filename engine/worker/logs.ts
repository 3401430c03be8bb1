/**
 * llama.cpp's log, kept because node-llama-cpp's errors are misleading (docs/decisions/state-through-scratch-file.md: "Failed to
 * load model", "Failed to create context" and the state-file message say nothing of the cause;
 * the log does). The engine reads the recent warning and error lines to explain a failure.
 */
import { hearthError, type HearthError, errorText } from '../contract/index.ts';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** The last `capacity` lines, with positions so a caller can ask for "the lines since X". */
export class LogRing {
  private readonly lines: string[] = [];
  private readonly capacity: number;
  private pushed = 0;

  constructor(capacity = 50) {
    this.capacity = capacity;
  }

  add(line: string): void {
    this.pushed++;
    this.lines.push(line);
    if (this.lines.length > this.capacity) this.lines.splice(0, this.lines.length - this.capacity);
  }

  /** A position to pass to `since` later. */
  mark(): number {
    return this.pushed;
  }

  /** The kept lines added after `mark` returned `position` (all kept lines by default). */
  since(position = 0): string[] {
    const dropped = this.pushed - this.lines.length;
    return this.lines.slice(Math.max(0, position - dropped));
  }
}

/** Strips llama.cpp's function-name prefixes: "llama_model_load: error loading model: X" → "X". */
export function cleanLogLine(line: string): string {
  let text = line.trim();
  for (;;) {
    const match = /^[a-z_0-9]+: (.*)$/s.exec(text);
    if (!match?.[1]) break;
    text = match[1];
  }
  return text.replace(/^error loading model:\s*/i, '').trim();
}

const memoryPatterns = [
  /too large for the available (V)?RAM/i,
  /out of memory/i,
  /failed to allocate/i,
  /unable to allocate/i,
  /cannot allocate memory/i,
  /insufficient memory/i,
  /not enough memory/i,
  /ErrorOutOfDeviceMemory/i,
  /std::bad_alloc/i,
];

function isMemoryProblem(text: string): boolean {
  return memoryPatterns.some((pattern) => pattern.test(text));
}

/**
 * Turns a failed model load or context creation into a HearthError, using the error and the
 * llama.cpp log lines written while it ran.
 */
export function classifyLoadFailure(error: unknown, logLines: readonly string[], build: string): HearthError {
  const message = errorText(error);
  const name = error instanceof Error ? error.constructor.name : '';
  const reasons = logLines.map(cleanLogLine).filter((line) => line.length > 0);

  for (const line of logLines) {
    const arch = /unknown model architecture: '([^']*)'/.exec(line);
    if (arch) {
      return hearthError(
        'MODEL_UNSUPPORTED',
        `This model's architecture "${arch[1]}" is not supported by the bundled llama.cpp (${build}).`,
        'Choose a model of a supported architecture (for example llama, qwen2, qwen3, gemma or mistral), or update Hearth.',
      );
    }
  }
  if (name === 'InsufficientMemoryError' || isMemoryProblem(message) || reasons.some(isMemoryProblem)) {
    const detail = reasons.find(isMemoryProblem) ?? message;
    return hearthError(
      'OUT_OF_MEMORY',
      `The model or its context does not fit in memory: ${detail}`,
      'Lower the context size in Settings, close other programs, or choose a smaller model.',
    );
  }
  if (name === 'InvalidGgufMagicError') {
    return hearthError('MODEL_INVALID', `The file is not a GGUF model: ${message}`);
  }
  // The most specific line is usually the first error after the generic ones were filtered out.
  const generic = /^(failed to load model|failed to create context)\.?$/i;
  const reason = reasons.filter((line) => !generic.test(line)).at(-1);
  if (reason) {
    const truncated = /not within the file bounds|incomplete|truncated/i.test(reason);
    return hearthError(
      'MODEL_INVALID',
      `llama.cpp could not load the model: ${reason}`,
      truncated ? 'The file is probably an incomplete download: download it again.' : undefined,
    );
  }
  return hearthError('MODEL_INVALID', `llama.cpp could not load the model: ${message}`);
}

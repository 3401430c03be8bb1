/**
 * Test helpers for the host's unit tests: a Hearth on a temporary data directory with the
 * fake engine. Not used by the app.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { ok, type HearthEvent, type Result } from '../../engine/contract/index.ts';
import type { GgufSummary } from '../../engine/gguf/reader.ts';
import { FakeEngine } from './fake-engine.ts';
import { startHearth, type Hearth, type HearthOptions, type HearthWiring } from '../../engine/host/hearth.ts';
import type { Logger } from '../../engine/host/logger.ts';

export function tempDir(prefix = 'hearth-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A logger that keeps lines in memory (and off the console). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string, message: string): void => void lines.push(`${level} ${message}`);
  return Object.assign(log, { lines, close: async () => undefined });
}

/** What the real reader would say about a small valid llama GGUF at `file`. */
export function fakeSummary(file: string): GgufSummary {
  return {
    path: file,
    fileSize: 9,
    version: 3,
    architecture: 'llama',
    name: path.basename(file, '.gguf'),
    contextLength: 8192,
    blockCount: 4,
    embeddingLength: 128,
    headCount: 4,
    headCountKv: 2,
    tensorCount: 0,
    fileType: 'F16',
    parameterCount: 0,
    hasChatTemplate: false,
    alignment: 32,
    dataOffset: 0,
    metadata: {},
  };
}

/** An inspect that accepts every file. */
export async function acceptAll(file: string): Promise<Result<GgufSummary>> {
  return ok(fakeSummary(file));
}

export interface TestHearth {
  readonly hearth: Hearth;
  readonly engine: FakeEngine;
  readonly dataDir: string;
  /** A file the fake inspect accepts, in the models directory. */
  readonly modelFile: string;
  readonly events: HearthEvent[];
  readonly log: Logger & { lines: string[] };
  /** Resolves with the first event (already seen or future) that matches. */
  waitFor<T extends HearthEvent>(match: (event: HearthEvent) => event is T, timeoutMs?: number): Promise<T>;
  waitFor(match: (event: HearthEvent) => boolean, timeoutMs?: number): Promise<HearthEvent>;
  cleanup(): Promise<void>;
}

export async function startTestHearth(
  options: Partial<HearthOptions> & { engine?: FakeEngine; wiring?: Partial<HearthWiring>; loadModel?: boolean } = {},
): Promise<TestHearth> {
  const dataDir = options.dataDir ?? tempDir();
  const engine = options.engine ?? new FakeEngine();
  const modelFile = path.join(dataDir, 'models', 'fake.gguf');
  const log = memoryLogger();
  const hearth = await startHearth(
    { dataDir, host: 'browser', version: '0.0.0-test', measureSpeed: false, ...options },
    {
      spawnEngine: engine.spawn,
      inspect: acceptAll,
      log,
      backoff: { initialMs: 5, maxMs: 40, stableMs: 60_000 },
      flushIntervalMs: 20,
      stopGraceMs: 500,
      ...options.wiring,
    },
  );
  writeFileSync(modelFile, 'GGUF fake');
  const events: HearthEvent[] = [];
  const waiters: { match: (e: HearthEvent) => boolean; resolve: (e: HearthEvent) => void }[] = [];
  hearth.onEvent((event) => {
    events.push(event);
    for (const waiter of [...waiters]) {
      if (waiter.match(event)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(event);
      }
    }
  });
  if (options.loadModel !== false) {
    const loaded = await hearth.api['models.load']({ path: modelFile });
    if (!loaded.ok) throw new Error(`fake load failed: ${loaded.error.message}`);
  }
  const waitFor = (match: (event: HearthEvent) => boolean, timeoutMs = 3000): Promise<HearthEvent> => {
    const seen = events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for an event')), timeoutMs);
      waiters.push({ match, resolve: (e) => (clearTimeout(timer), resolve(e)) });
    });
  };
  return {
    hearth,
    engine,
    dataDir,
    modelFile,
    events,
    log,
    waitFor: waitFor as TestHearth['waitFor'],
    async cleanup() {
      await hearth.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Matches the final `message.updated` of a message (not 'streaming'). */
export function finished(messageId: string) {
  return (event: HearthEvent): event is Extract<HearthEvent, { type: 'message.updated' }> =>
    event.type === 'message.updated' && event.payload.message.id === messageId && event.payload.message.status !== 'streaming';
}

/** What `call` rejects with, which must be an `errorClass` (the test fails if it resolves or rejects otherwise). */
export async function rejection<E>(call: Promise<unknown>, errorClass: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await call;
  } catch (error) {
    if (error instanceof errorClass) return error;
    throw error;
  }
  throw new Error('the call succeeded');
}

/** The value of a successful Result; a failed one fails the test with its code and message. */
export function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
  return result.value;
}

/**
 * Returns a `start` that works like `startTestHearth` and cleans up every Hearth it started
 * after each test of the calling file.
 */
export function useTestHearths(): typeof startTestHearth {
  const open: TestHearth[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.cleanup()));
  });
  return async (...args) => {
    const t = await startTestHearth(...args);
    open.push(t);
    return t;
  };
}

/** Resolves once `check()` holds; rejects after `timeoutMs`. */
export function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) resolve();
      else if (Date.now() - started > timeoutMs) reject(new Error('condition not met in time'));
      else setTimeout(tick, 2);
    };
    tick();
  });
}

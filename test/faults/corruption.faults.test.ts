/**
 * Corruption of the stored KV, through the real browser host and engine: bit flips in a chunk
 * file's header and body, truncation, deletion, bytes appended, a manifest that lists a chunk the
 * index has lost, a chunk file of another model with the same shapes planted under a chat's key,
 * and a bit flip in a tail file. Each hits one chat's stored KV while the chat is not resident,
 * so its next turn must restore from disk.
 *
 * Every fault must be caught before llama.cpp sees a byte (a bad state can crash it or load
 * silently wrong): the reply's readout names the check that caught it, the reply completes, and
 * `kv.verify {repair: true}` then `kv.verify` is clean. Offsets and lengths come from a seeded PRNG.
 */
import { copyFileSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvVerifyReport } from '../../engine/contract/index.ts';
import { chunkHeaderBytes } from '../../engine/kv/chunk-file.ts';
import { tailPath } from '../../engine/kv/tail-file.ts';
import { mulberry32 } from '../support/gguf-writer.ts';
import { testModelPath } from '../support/models.ts';
import { seededText } from '../support/text.ts';
import { recordFault } from './record.ts';
import { chatChunks, launch, lostMessages, repairAndVerify, turn, withIndex, type Acked, type Session } from './store-support.ts';

const CHUNK_TOKENS = 256;
const rng = mulberry32(7331);
const draw = (n: number): number => Math.floor(rng() * n);

/** What a fault gets to work on: the chat's stored chunks (in order) and the KV root. */
interface Target {
  readonly kvRoot: string;
  readonly manifestId: string;
  readonly keys: readonly string[];
  readonly paths: readonly string[];
  /** A chunk file of the other model for the same tokens (planted by the "another model" fault). */
  readonly foreign: readonly string[];
}

interface Fault {
  readonly name: string;
  /** Which chunk it damages (null: the tail). */
  readonly chunk: (count: number) => number | null;
  readonly inject: (target: Target, index: number | null) => string;
  /** The check that must catch it, as the readout words it. */
  readonly expect: RegExp;
}

function flipBits(path: string, offsets: readonly number[]): string {
  const bytes = readFileSync(path);
  const flips = offsets.map((offset) => {
    const at = Math.min(offset, bytes.length - 1);
    const bit = draw(8);
    bytes[at] = (bytes[at] as number) ^ (1 << bit);
    return `byte ${at} bit ${bit}`;
  });
  writeFileSync(path, bytes);
  return flips.join(', ');
}

const anyChunk = (count: number): number => draw(count);
const verificationFault = /chunk \d+ failed verification \((magic|version|header|key|length|checksum|truncated)\)/;

const faults: readonly Fault[] = [
  ...[1, 2].map((n) => ({
    name: 'bit flip in a chunk header',
    chunk: anyChunk,
    inject: (t: Target, i: number | null) => `#${n}: ${flipBits(t.paths[i as number] as string, [draw(chunkHeaderBytes)])}`,
    expect: /chunk \d+ failed verification \((magic|version|header)\)/,
  })),
  ...[1, 2].map((n) => ({
    name: 'bit flip in a chunk body',
    chunk: anyChunk,
    inject: (t: Target, i: number | null) => {
      const path = t.paths[i as number] as string;
      return `#${n}: ${flipBits(path, [chunkHeaderBytes + draw(statSync(path).size - chunkHeaderBytes)])}`;
    },
    expect: /chunk \d+ failed verification \(checksum\)/,
  })),
  {
    name: '16 bit flips across a chunk',
    chunk: anyChunk,
    inject: (t, i) => {
      const path = t.paths[i as number] as string;
      const size = statSync(path).size;
      return flipBits(path, Array.from({ length: 16 }, () => draw(size)));
    },
    expect: verificationFault,
  },
  ...[1, 2].map((n) => ({
    name: 'chunk file truncated',
    chunk: anyChunk,
    inject: (t: Target, i: number | null) => {
      const path = t.paths[i as number] as string;
      const length = draw(statSync(path).size);
      truncateSync(path, length);
      return `#${n}: cut to ${length} bytes`;
    },
    expect: /chunk \d+ failed verification \(truncated\)/,
  })),
  {
    name: 'bytes appended to a chunk file',
    chunk: anyChunk,
    inject: (t, i) => {
      appendFileSync(t.paths[i as number] as string, Buffer.alloc(1 + draw(64), 7));
      return 'appended';
    },
    expect: /chunk \d+ failed verification \(length\)/,
  },
  {
    name: 'chunk file deleted',
    chunk: anyChunk,
    inject: (t, i) => {
      unlinkSync(t.paths[i as number] as string);
      return 'deleted';
    },
    expect: /chunk \d+ failed verification \(missing\)/,
  },
  {
    name: 'manifest points at a chunk missing from the index',
    chunk: anyChunk,
    inject: (t, i) => {
      withIndex(t.kvRoot, (db) => db.prepare('DELETE FROM chunks WHERE key = ?').run(t.keys[i as number] as string));
      return 'chunk row deleted';
    },
    expect: /chunk \d+ is listed by a manifest but missing from the KV index \(dangling reference\)/,
  },
  {
    name: 'chunk of another model with the same shapes',
    // Chunk 1 holds system-prompt tokens only, so the other model's chat has the same tokens there.
    chunk: () => 1,
    inject: (t, i) => {
      copyFileSync(t.foreign[i as number] as string, t.paths[i as number] as string);
      return "the 'otherWeights' model's chunk 1 for the same tokens";
    },
    expect: /chunk 1 failed verification \(key\)/,
  },
  {
    name: 'bit flip in a stored tail file',
    chunk: () => null,
    inject: (t) => {
      const row = withIndex(t.kvRoot, (db) => db.prepare('SELECT file FROM tails WHERE manifest_id = ?').get(t.manifestId) as { file: string | null } | undefined);
      if (!row?.file) throw new Error('the manifest has no tail file');
      const path = tailPath(t.kvRoot, row.file);
      return `tail file ${flipBits(path, [draw(statSync(path).size)])}`;
    },
    expect: /the last partial chunk failed verification/,
  },
];

/** About 1,100 tokens (the test model's vocabulary is bytes): four full chunks and a tail after the first turn. */
const systemPrompt = (seed: number): string => `You are a careful assistant. ${seededText(seed, 550)}`;

describe('corrupted KV chunks, manifests and tails', () => {
  let dataDir = '';
  let kvRoot = '';
  let session: Session;
  const acked: Acked[] = [];
  const chatOf = new Map<Fault, string>();
  let foreign: string[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'hearth-corruption-'));
    kvRoot = join(dataDir, 'kv');
    const [main, other] = [await testModelPath(), await testModelPath('otherWeights')];
    // First the other model stores the chat whose chunk is planted later.
    session = await launch({ dataDir, model: other });
    const { client } = session;
    const twin = await client.must('chats.create', { title: 'other model', systemPrompt: systemPrompt(99) });
    await turn(client, twin.id, 'Hello.', { acked });
    foreign = chatChunks(kvRoot, twin.id).paths.map((path, i) => {
      // Kept aside: the default model's turns would not touch it, but the budget could.
      const copy = join(dataDir, `foreign-${i}.kvc`);
      copyFileSync(path, copy);
      return copy;
    });
    await client.must('models.load', { path: main });
    for (const fault of faults) {
      const chat = await client.must('chats.create', { title: fault.name, systemPrompt: systemPrompt(fault.name.startsWith('chunk of another model') ? 99 : 100 + chatOf.size) });
      chatOf.set(fault, chat.id);
      const { message, saved } = await turn(client, chat.id, 'Hello.', { acked });
      if (message.status !== 'complete' || !saved) throw new Error(`setup turn of ${fault.name}: ${message.status}, saved ${saved}`);
    }
  }, 120_000);

  afterAll(async () => {
    await session?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  for (const fault of faults) {
    it(`${fault.name}: caught before llama.cpp, the chat falls back and goes on, the store repairs`, async () => {
      const { client } = session;
      const chatId = chatOf.get(fault) as string;
      const stored = chatChunks(kvRoot, chatId);
      expect(stored.keys.length).toBeGreaterThanOrEqual(3);
      const index = fault.chunk(stored.keys.length);
      const injected = fault.inject({ kvRoot, ...stored, foreign }, index);
      const seen: KvVerifyReport = await client.must('kv.verify', {});

      // Another chat holds the one slot, so this turn restores from disk.
      const { message } = await turn(client, chatId, 'And then?', { acked });
      const stats = message.stats;
      const reason = stats?.fallbackReason ?? '';
      const { after } = await repairAndVerify(client);
      const { lost, notes } = await lostMessages(client, acked.filter((a) => a.chatId === chatId));
      const limit = index === null ? stored.keys.length * CHUNK_TOKENS : index * CHUNK_TOKENS;

      const problems: string[] = [];
      if (message.status !== 'complete') problems.push(`the reply ended ${message.status}`);
      if (!fault.expect.test(reason)) problems.push(`the readout does not name the check: ${JSON.stringify(reason)}`);
      if ((stats?.tokensRestored ?? 0) > limit) problems.push(`restored ${stats?.tokensRestored} tokens, past the damage at token ${limit}`);
      if (!after.ok) problems.push(`kv.verify after repair: ${after.problems.join('; ')}`);
      if (lost > 0) problems.push(notes.join('; '));
      const check = /\(([a-z]+)\)/.exec(reason)?.[1] ?? (/dangling/.test(reason) ? 'dangling' : /partial chunk/.test(reason) ? 'tail checksum' : '?');
      const outcome = problems.length === 0 ? `clean fallback (${check})` : `FAILED: ${problems.join('; ')}`;
      recordFault({
        area: 'corruption',
        fault: fault.name,
        outcome,
        messagesLost: lost,
        hostCrashes: session.crashes(),
        detail: `${injected}; chunk ${index ?? 'tail'}; readout: ${reason}; kv.verify before: ${seen.problems[0] ?? 'nothing found'}`,
      });
      expect(problems).toEqual([]);
      expect(session.crashes()).toBe(0);
    });
  }

  it('cleans up the planted copies', () => {
    for (const path of foreign) rmSync(path, { force: true });
    expect(session.crashes()).toBe(0);
  });
});

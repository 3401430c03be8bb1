/**
 * Shared steps of the fault files: a browser host on a data directory that counts its own
 * unexpected exits (every file but the kill suite, which relaunches hosts its own way), a chat
 * turn that waits for its KV save, the store's self-check, the chunk files of a chat read from
 * the KV index behind the engine's back, and the check that every acknowledged message is still
 * there.
 */
import { spawn } from 'node:child_process';
import { readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { HearthEvent, KvVerifyReport, Message } from '../../engine/contract/index.ts';
import { chunkPath } from '../../engine/kv/chunk-file.ts';
import { HostClient } from '../support/host-client.ts';
import { startHost, type Host } from '../support/host.ts';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A host and its client, counting exits the test did not ask for (host crashes). */
export interface Session {
  readonly host: Host;
  readonly client: HostClient;
  /** Exits of this host that the test did not cause. */
  crashes(): number;
  /** Stops the host (SIGTERM) and closes the client. */
  stop(): Promise<void>;
  /** SIGKILLs the host; its engine is SIGKILLed too (a power cut takes both). */
  kill(): Promise<void>;
}

/** Starts a host on `dataDir` and waits until its engine runs (and its model is ready, when one is given). */
export async function launch(options: { dataDir: string; model?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Session> {
  const host = await startHost({ dataDir: options.dataDir, ...(options.model !== undefined ? { model: options.model } : {}), ...(options.env ? { env: options.env } : {}) });
  let expected = false;
  let crashes = 0;
  host.process.once('exit', () => {
    if (!expected) crashes++;
  });
  const client = await HostClient.connect(host);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const state = await client.call('app.state', {});
    if (state.ok && state.value.engine.state === 'running' && (options.model === undefined || state.value.model.status === 'ready')) break;
    if (Date.now() > deadline) throw new Error(`the host was not ready: ${JSON.stringify(state)}\n${host.output().slice(-2000)}`);
    await sleep(50);
  }
  return {
    host,
    client,
    crashes: () => crashes,
    async stop() {
      expected = true;
      client.close();
      await host.stop();
    },
    async kill() {
      expected = true;
      client.close();
      const engine = await host.enginePid();
      const exited = new Promise<void>((resolve) => host.process.once('exit', () => resolve()));
      host.process.kill('SIGKILL');
      if (engine !== null) {
        try {
          process.kill(engine, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
    },
  };
}

type KvEvent = Extract<HearthEvent, { type: 'cache.event' }>;

/** An acknowledged message: user messages must come back with exactly this text. */
export interface Acked {
  readonly chatId: string;
  readonly id: string;
  readonly role: Message['role'];
  readonly content?: string;
}

/**
 * Sends `text` in a chat (greedy, `maxTokens`), waits for the final reply and, with `waitSave`,
 * for the chat's KV save after it. The user message and the reply are added to `acked`.
 */
export async function turn(
  client: HostClient,
  chatId: string,
  text: string,
  options: { maxTokens?: number; waitSave?: boolean; acked?: Acked[] } = {},
): Promise<{ message: Message; saved: boolean }> {
  await client.must('chats.configure', { chatId, sampling: { temperature: 0, topP: 1, maxTokens: options.maxTokens ?? 6 } });
  const from = client.events.length;
  const sent = await client.must('chats.send', { chatId, text });
  options.acked?.push({ chatId, id: sent.userMessage.id, role: 'user', content: text }, { chatId, id: sent.assistantMessage.id, role: 'assistant' });
  const message = await client.finalMessage(sent.assistantMessage.id, { from, timeoutMs: 60_000 });
  let saved = false;
  if (options.waitSave ?? true) {
    saved = await client
      .waitFor((e): e is KvEvent => e.type === 'cache.event' && e.payload.kind === 'save' && e.payload.chatId === chatId, { from, timeoutMs: 10_000 })
      .then(() => true)
      .catch(() => false);
  }
  return { message, saved };
}

/** `kv.verify {repair: true}` then `kv.verify`: the second report, and the first (what was found). */
export async function repairAndVerify(client: HostClient): Promise<{ found: KvVerifyReport; after: KvVerifyReport }> {
  const found = await client.must('kv.verify', { repair: true });
  const after = await client.must('kv.verify', {});
  return { found, after };
}

/**
 * Every chat is listed and opens, and every acknowledged message is there with its role (and,
 * where `content` is set, its exact text): the number missing or changed, with a note for each.
 */
export async function lostMessages(client: HostClient, acked: readonly Acked[]): Promise<{ lost: number; notes: string[] }> {
  const notes: string[] = [];
  let lost = 0;
  // One entry per message (a snapshot and the acknowledged list may both hold it), its text pinned where either pins it.
  const unique = new Map<string, Acked>();
  for (const a of acked) {
    const seen = unique.get(a.id);
    unique.set(a.id, seen && seen.content !== undefined ? seen : a);
  }
  const byChat = new Map<string, Acked[]>();
  for (const a of unique.values()) byChat.set(a.chatId, [...(byChat.get(a.chatId) ?? []), a]);
  const listed = await client.call('chats.list', {});
  for (const [chatId, mine] of byChat) {
    if (listed.ok && !listed.value.chats.some((c) => c.id === chatId)) {
      lost += mine.length;
      notes.push(`chat ${chatId} is not listed`);
      continue;
    }
    const detail = await client.call('chats.get', { chatId });
    if (!detail.ok) {
      lost += mine.length;
      notes.push(`chat ${chatId} does not open: ${detail.error.message}`);
      continue;
    }
    const byId = new Map(detail.value.messages.map((m) => [m.id, m]));
    for (const a of mine) {
      const found = byId.get(a.id);
      if (!found || found.role !== a.role || (a.content !== undefined && found.content !== a.content)) {
        lost++;
        notes.push(`${a.role} message ${a.id} ${found ? `changed (${found.status}: ${JSON.stringify(found.content.slice(0, 60))})` : 'is missing'}`);
      }
    }
  }
  return { lost, notes };
}

/** `before`'s messages that `after` lacks or holds changed (by id, role and pinned text): for two reads of a database file. */
export function missingFrom(before: readonly Acked[], after: readonly Acked[]): { lost: number; notes: string[] } {
  const byId = new Map(after.map((m) => [m.id, m]));
  const notes: string[] = [];
  for (const m of before) {
    const found = byId.get(m.id);
    if (!found) notes.push(`${m.role} message ${m.id} is missing`);
    else if (found.role !== m.role || (m.content !== undefined && found.content !== m.content)) notes.push(`${m.role} message ${m.id} changed`);
  }
  return { lost: notes.length, notes };
}

/** A message as a row's "before": its text is pinned once it is done (a streaming reply's still grows). */
function asAcked(m: { readonly id: string; readonly chatId: string; readonly role: Message['role']; readonly content: string; readonly status: string }): Acked {
  return { chatId: m.chatId, id: m.id, role: m.role, ...(m.status === 'streaming' ? {} : { content: m.content }) };
}

/** Every message of every chat, through the host's API: what a fault row counts before and after. */
export async function allMessages(client: HostClient): Promise<Acked[]> {
  const out: Acked[] = [];
  for (const chat of (await client.must('chats.list', {})).chats) {
    for (const m of (await client.must('chats.get', { chatId: chat.id })).messages) out.push(asAcked({ ...m, chatId: chat.id }));
  }
  return out;
}

/** Every message in a hearth.db file, read directly (read-only): for rows where no host runs on it. */
export function messagesInFile(dbFile: string): Acked[] {
  const db = new DatabaseSync(dbFile, { readOnly: true });
  try {
    const rows = db.prepare('SELECT id, chat_id AS chatId, role, content, status FROM messages').all() as { id: string; chatId: string; role: Message['role']; content: string; status: string }[];
    return rows.map(asAcked);
  } finally {
    db.close();
  }
}

/** Runs `fn` on the KV index (`<kvRoot>/index.db`) through a connection of this process: the engine's SQLite handles the concurrency. */
export function withIndex<T>(kvRoot: string, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(join(kvRoot, 'index.db'), { timeout: 5000 });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** The chunk keys of the chat's longest stored branch, in order, with their file paths. */
export function chatChunks(kvRoot: string, chatId: string): { manifestId: string; keys: string[]; paths: string[] } {
  return withIndex(kvRoot, (db) => {
    const manifest = db
      .prepare('SELECT id FROM manifests WHERE substr(id, 1, ?) = ? ORDER BY chunk_count DESC, last_used DESC LIMIT 1')
      .get(chatId.length + 1, `${chatId}/`) as { id: string } | undefined;
    if (!manifest) return { manifestId: '', keys: [], paths: [] };
    const keys = (db.prepare('SELECT key FROM manifest_chunks WHERE manifest_id = ? ORDER BY idx').all(manifest.id) as { key: string }[]).map((r) => r.key);
    return { manifestId: manifest.id, keys, paths: keys.map((key) => chunkPath(kvRoot, key)) };
  });
}

/** One frame of a WAL file's current generation. */
export interface WalFrame {
  readonly offset: number;
  readonly page: number;
  /** The frame ends a transaction (its "database size after commit" is set). */
  readonly commit: boolean;
}

/**
 * The frames of `<db>-wal` that belong to its current generation: those after the 32-byte header
 * whose salts equal the header's (a WAL restarted after a checkpoint keeps its length, and the
 * older frames beyond the new ones carry the old salts). Big-endian, per SQLite's file format.
 */
export function walFrames(walPath: string): { pageSize: number; frames: WalFrame[] } {
  const bytes = readFileSync(walPath);
  if (bytes.length < 32) return { pageSize: 0, frames: [] };
  const pageSize = bytes.readUInt32BE(8);
  const salt1 = bytes.readUInt32BE(16);
  const salt2 = bytes.readUInt32BE(20);
  const frames: WalFrame[] = [];
  for (let offset = 32; offset + 24 + pageSize <= bytes.length; offset += 24 + pageSize) {
    if (bytes.readUInt32BE(offset + 8) !== salt1 || bytes.readUInt32BE(offset + 12) !== salt2) break;
    frames.push({ offset, page: bytes.readUInt32BE(offset), commit: bytes.readUInt32BE(offset + 4) !== 0 });
  }
  return { pageSize, frames };
}

/**
 * Cuts the WAL in the middle of its last frame, as a crash while that frame was being written
 * would: SQLite's recovery then drops the whole transaction the frame belonged to. Returns where
 * it cut and the frames of that (torn) transaction, or null for a WAL without frames.
 */
export function tearLastFrame(walPath: string): { cutAt: number; tornFrames: number; frames: number } | null {
  const { pageSize, frames } = walFrames(walPath);
  const last = frames.at(-1);
  if (!last) return null;
  let start = frames.length - 1;
  while (start > 0 && !(frames[start - 1] as WalFrame).commit) start--;
  const cutAt = last.offset + 24 + Math.floor(pageSize / 2);
  truncateSync(walPath, cutAt);
  return { cutAt, tornFrames: frames.length - start, frames: frames.length };
}

/**
 * Another process holding `dbFile`'s write lock (`BEGIN EXCLUSIVE` through node:sqlite) for
 * `ms`, then committing nothing and exiting. Resolves once it holds the lock.
 */
export async function holdWriteLock(dbFile: string, ms: number): Promise<{ readonly exited: Promise<void>; release(): Promise<void> }> {
  const script = `
    const { DatabaseSync } = require('node:sqlite');
    const db = new DatabaseSync(${JSON.stringify(dbFile)}, { timeout: 10000 });
    db.exec('BEGIN EXCLUSIVE');
    console.log('locked');
    setTimeout(() => { db.exec('ROLLBACK'); db.close(); }, ${ms});
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited early (${code})`)));
  });
  return {
    exited,
    /** Ends the holder now (the kernel drops its lock with it). */
    release: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A full disk under the KV store, through the real browser host and engine: the cache is
 * optional, so a full disk must pause it, never cost a reply or leave a partial chunk. Running as
 * root, a small tmpfs is mounted at `<dataDir>/kv` and filled; otherwise (or with
 * HEARTH_FAULTS_DISK=injected) the engine gets HEARTH_TEST_KV_FULL_FLAG, a flag file under which
 * every chunk write fails with ENOSPC. The fault names say which mechanism ran.
 *
 * Expected: the reply completes and is kept; `kv.status` says paused with DISK_FULL and a clear
 * reason; `kv.verify` is clean; restores still work; once space returns, persistence resumes.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HearthEvent } from '../../engine/contract/index.ts';
import { testModelPath } from '../support/models.ts';
import { seededText } from '../support/text.ts';
import { recordFault } from './record.ts';
import { allMessages, launch, lostMessages, turn, type Acked, type Session } from './store-support.ts';

type KvStatusEvent = Extract<HearthEvent, { type: 'kv.status' }>;

/** Room for the index and its WAL (tail payloads are rewritten every turn) and a few chunks. */
const TMPFS_SIZE = '16m';

function tryMount(dir: string): boolean {
  if (process.env.HEARTH_FAULTS_DISK === 'injected' || process.getuid?.() !== 0) return false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0755`, 'hearth-faults-kv', dir], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // Busy (a process still has a file open): detach it now, the kernel frees it when that closes.
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
}

/** Writes a file until the file system says ENOSPC. */
function fillUp(path: string): number {
  const block = Buffer.alloc(64 * 1024, 0x5a);
  const fd = openSync(path, 'w');
  let written = 0;
  try {
    for (;;) written += writeSync(fd, block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
  return written;
}

describe('a full disk under the KV store', () => {
  let dataDir = '';
  let kvRoot = '';
  let mounted = false;
  let mechanism: 'tmpfs' | 'injected ENOSPC' = 'injected ENOSPC';
  let flag = '';
  let session: Session | null = null;
  const acked: Acked[] = [];
  const chats: string[] = [];

  const fill = (): string => {
    if (mounted) return `filled with ${fillUp(join(kvRoot, 'filler'))} bytes`;
    writeFileSync(flag, '');
    return 'flag set';
  };
  const free = (): void => {
    rmSync(mounted ? join(kvRoot, 'filler') : flag, { force: true });
  };
  const fault = (what: string): string => `${what} (${mechanism})`;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'hearth-disk-'));
    kvRoot = join(dataDir, 'kv');
    mkdirSync(kvRoot);
    mounted = tryMount(kvRoot);
    mechanism = mounted ? 'tmpfs' : 'injected ENOSPC';
    flag = join(dataDir, 'kv-full.flag');
    session = await launch({ dataDir, model: await testModelPath(), ...(mounted ? {} : { env: { HEARTH_TEST_KV_FULL_FLAG: flag } }) });
    const { client } = session;
    for (const seed of [1, 2]) {
      const chat = await client.must('chats.create', { title: `Disk ${seed}`, systemPrompt: `You are terse. ${seededText(seed, 550)}` });
      chats.push(chat.id);
    }
    // Chat 0 is stored while there is room.
    const { saved } = await turn(client, chats[0] as string, 'Hello.', { acked });
    if (!saved) throw new Error('the first save did not happen');
  }, 90_000);

  afterAll(async () => {
    try {
      await session?.stop();
    } finally {
      try {
        if (mounted) unmount(kvRoot);
      } finally {
        if (dataDir) await rm(dataDir, { recursive: true, force: true });
      }
    }
  });

  it('fills up: the reply is kept, persistence pauses with DISK_FULL, no partial chunk is visible, restores still work', async () => {
    const { client } = session as Session;
    const before = await allMessages(client);
    const filled = fill();
    const from = client.events.length;
    // A new chat: its history is new chunks, which no longer fit.
    const { message } = await turn(client, chats[1] as string, 'Hello.', { acked, waitSave: false });
    const paused = await client
      .waitFor((e): e is KvStatusEvent => e.type === 'kv.status' && e.payload.persistence === 'paused', { from, timeoutMs: 15_000 })
      .then(() => true)
      .catch(() => false);
    const status = (await client.must('app.state', {})).kv ?? { persistence: 'off' as const };
    const verify = await client.must('kv.verify', {});
    const { lost, notes } = await lostMessages(client, [...before, ...acked]);
    const problems: string[] = [];
    if (message.status !== 'complete') problems.push(`the reply ended ${message.status}`);
    if (!paused || status.persistence !== 'paused' || status.reason?.code !== 'DISK_FULL') problems.push(`kv.status: ${JSON.stringify(status)}`);
    if (!/disk is full/.test(status.reason?.message ?? '') || !/Free some disk space/.test(status.reason?.hint ?? '')) problems.push('the reason does not say what happened and what to do');
    if (!verify.ok) problems.push(`kv.verify: ${verify.problems.join('; ')}`);
    problems.push(...notes);
    recordFault({
      area: 'disk',
      fault: fault('KV store disk full during a save'),
      outcome: problems.length === 0 ? 'paused with DISK_FULL, reply kept, no partial chunk' : `FAILED: ${problems.join('; ')}`,
      messagesLost: lost,
      hostCrashes: (session as Session).crashes(),
      detail: `${filled}; kv.status reason: ${status.reason?.message ?? ''}; messages: ${before.length} before, ${(await allMessages(client)).length} after`,
    });
    expect(problems).toEqual([]);

    // Chat 0 lost its slot to chat 1: its next turn restores from the full disk.
    const beforeRestore = await allMessages(client);
    const { message: restored } = await turn(client, chats[0] as string, 'And then?', { acked, waitSave: false });
    const counted = await lostMessages(client, [...beforeRestore, ...acked]);
    const ok = restored.status === 'complete' && (restored.stats?.tokensRestored ?? 0) > 0 && counted.lost === 0;
    recordFault({
      area: 'disk',
      fault: fault('restore while the KV disk is full'),
      outcome: ok ? 'restored from disk' : `FAILED: ${restored.status}, ${JSON.stringify(restored.stats)}; ${counted.notes.join('; ')}`,
      messagesLost: counted.lost,
      hostCrashes: (session as Session).crashes(),
      detail: `${restored.stats?.tokensRestored ?? 0} tokens restored; messages: ${beforeRestore.length} before, ${(await allMessages(client)).length} after`,
    });
    expect(ok).toBe(true);
  });

  it('space returns: persistence resumes and the next turn saves', async () => {
    const { client } = session as Session;
    const before = await allMessages(client);
    free();
    const from = client.events.length;
    const { message, saved } = await turn(client, chats[1] as string, 'And now?', { acked });
    const resumed = await client
      .waitFor((e): e is KvStatusEvent => e.type === 'kv.status' && e.payload.persistence === 'on', { from, timeoutMs: 15_000 })
      .then(() => true)
      .catch(() => false);
    const status = (await client.must('app.state', {})).kv ?? { persistence: 'off' as const };
    const usage = await client.must('cache.chat', { chatId: chats[1] as string });
    const verify = await client.must('kv.verify', {});
    const { lost, notes } = await lostMessages(client, [...before, ...acked]);
    const problems: string[] = [];
    if (message.status !== 'complete') problems.push(`the reply ended ${message.status}`);
    if (!saved || !resumed || status.persistence !== 'on') problems.push(`saved ${saved}, kv.status ${JSON.stringify(status)}`);
    if (!verify.ok) problems.push(`kv.verify: ${verify.problems.join('; ')}`);
    if (usage.tokensOnDisk <= 0) problems.push('the chat has nothing stored');
    problems.push(...notes);
    recordFault({
      area: 'disk',
      fault: fault('KV store disk space freed'),
      outcome: problems.length === 0 ? 'persistence resumed, next turn saved' : `FAILED: ${problems.join('; ')}`,
      messagesLost: lost,
      hostCrashes: (session as Session).crashes(),
      detail: `the chat has ${usage.tokensOnDisk} tokens (${usage.bytesOnDisk} bytes) on disk again; messages: ${before.length} before, ${(await allMessages(client)).length} after`,
    });
    expect(problems).toEqual([]);
    expect((session as Session).crashes()).toBe(0);
  });
});

/**
 * The KV store by model: which model each fingerprint was computed from (`fingerprint_models`,
 * store-db.ts), how much KV a model left (manifests and bytes), and forgetting it all when the
 * model is deleted. A fingerprint is a digest and cannot be reversed to its model, so the engine
 * records the pair whenever it computes a loaded model's fingerprint (kv-cache.ts `prepare`);
 * manifests whose fingerprint was never recorded (saved before the table existed) belong to no
 * model here and leave by LRU eviction.
 */
import { err, ok } from '../contract/index.ts';
import type { Result } from '../contract/index.ts';
import { isDigest } from './fingerprint.ts';
import type { StoreContext } from './store-context.ts';
import { readIndex, sql } from './store-context.ts';
import { deleteManifests, type ManifestToDelete } from './store-write.ts';
import type { ForgetModelResult, ModelUsage } from './store-types.ts';

/** The manifests of a model: those whose fingerprint was recorded for it. Bind the model hash. */
const modelManifests = 'SELECT id, coalesce(tail_bytes, 0) AS tail FROM manifests WHERE fingerprint IN (SELECT fingerprint FROM fingerprint_models WHERE model_hash = ?)';

export function recordFingerprint(ctx: StoreContext, fingerprint: string, modelHash: string): Result<void> {
  if (!isDigest(fingerprint) || !isDigest(modelHash)) return err('INVALID_INPUT', 'A fingerprint and a model hash are sha256 hex digests.');
  return readIndex(ctx, 'Could not record the KV fingerprint\'s model', () => {
    // Read first: every model load records its fingerprint, and after the first time the row
    // is there; a read takes no write lock on the index (which another process may hold).
    if (sql(ctx, 'SELECT 1 FROM fingerprint_models WHERE fingerprint = ?').get(fingerprint) === undefined) {
      // A fingerprint digests its model hash, so a row already there names the same model.
      sql(ctx, 'INSERT INTO fingerprint_models (fingerprint, model_hash, recorded_at) VALUES (?, ?, ?) ON CONFLICT(fingerprint) DO NOTHING').run(fingerprint, modelHash, ctx.now());
    }
    return ok(undefined);
  });
}

export function fingerprintModel(ctx: StoreContext, fingerprint: string): Result<string | null> {
  return readIndex(ctx, 'Could not read the KV fingerprint\'s model', () => {
    const row = sql(ctx, 'SELECT model_hash FROM fingerprint_models WHERE fingerprint = ?').get(fingerprint) as { model_hash: string } | undefined;
    return ok(row?.model_hash ?? null);
  });
}

/**
 * The model's manifests and their bytes: each distinct chunk file once (two branches of a chat,
 * or two chats, share their common prefix's chunks), plus every tail payload. The chunks are the
 * model's own: keys chain from the fingerprint (fingerprint.ts), so no other model's manifest
 * lists them.
 */
export function modelUsage(ctx: StoreContext, modelHash: string): Result<ModelUsage> {
  if (!isDigest(modelHash)) return err('INVALID_INPUT', 'A model hash is a sha256 hex digest.');
  return readIndex(ctx, 'Could not read the model\'s stored KV', () => {
    const row = sql(
      ctx,
      `WITH m AS (${modelManifests}),
            used AS (SELECT DISTINCT mc.key AS key FROM m JOIN manifest_chunks mc ON mc.manifest_id = m.id)
       SELECT (SELECT count(*) FROM m) AS conversations,
              (SELECT coalesce(sum(tail), 0) FROM m) + (SELECT coalesce(sum(c.bytes), 0) FROM used JOIN chunks c ON c.key = used.key) AS bytes`,
    ).get(modelHash) as { conversations: number; bytes: number };
    return ok({ conversations: row.conversations, bytes: row.bytes });
  });
}

/**
 * Deletes the model's manifests and the chunks only they used: the same deletion as one
 * manifest's (store-write.ts `deleteManifests`), for all of them in one transaction under the
 * store's lock.
 */
export function forgetModel(ctx: StoreContext, modelHash: string): Promise<Result<ForgetModelResult>> {
  if (!isDigest(modelHash)) return Promise.resolve(err('INVALID_INPUT', 'A model hash is a sha256 hex digest.'));
  return deleteManifests(ctx, 'Could not forget the model\'s stored KV', () => sql(ctx, modelManifests).all(modelHash) as unknown as ManifestToDelete[]);
}

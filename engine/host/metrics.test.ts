import { describe, expect, it } from 'vitest';
import { Metrics } from './metrics.ts';

describe('Metrics', () => {
  it('counts restored tokens, times restores, and shows the disk KV store', () => {
    const metrics = new Metrics();
    metrics.record({ tokensReused: 0, tokensRestored: 3840, tokensPrefilled: 12, tokensGenerated: 5, ttftMs: 60, restoreMs: 41, cacheSource: 'disk' });
    metrics.record({ tokensReused: 100, tokensRestored: 0, tokensPrefilled: 4, tokensGenerated: 5, ttftMs: 10, cacheSource: 'memory' });
    const text = metrics.render({
      kvCellsUsed: 0,
      kvCellsCapacity: 0,
      engineRestarts: 0,
      modelLoaded: true,
      kvStore: { bytesOnDisk: 5000, chunkCount: 15, logicalBytes: 9000 },
    });
    for (const line of [
      'hearth_prompt_tokens_total{source="restored"} 3840',
      '# TYPE hearth_restore_seconds histogram',
      'hearth_restore_seconds_bucket{le="0.025"} 0',
      'hearth_restore_seconds_bucket{le="0.05"} 1',
      'hearth_restore_seconds_count 1',
      'hearth_restore_seconds_sum 0.041',
      'hearth_kv_store_bytes 5000',
      'hearth_kv_store_chunks 15',
      'hearth_kv_store_logical_bytes 9000',
    ]) {
      expect(text).toContain(line);
    }
    const empty = new Metrics().render({ kvCellsUsed: 0, kvCellsCapacity: 0, engineRestarts: 0, modelLoaded: false });
    expect(empty).toContain('hearth_kv_store_chunks 0');
    expect(empty).toContain('hearth_restore_seconds_count 0');
  });
});

import { describe, expect, it } from 'vitest';
import { summarize } from './summary.ts';

describe('the fault suite summary', () => {
  it('counts outcomes per fault and totals lost messages and host crashes', () => {
    const text = summarize(
      [
        { area: 'kill', fault: 'SIGKILL engine during save', outcome: 'restore exact', messagesLost: 0, hostCrashes: 0 },
        { area: 'kill', fault: 'SIGKILL engine during save', outcome: 'restore exact', messagesLost: 0, hostCrashes: 0 },
        { area: 'kill', fault: 'SIGKILL engine during save', outcome: 'clean fallback (nothing stored)', messagesLost: 0, hostCrashes: 0 },
        { area: 'disk', fault: 'full disk (tmpfs)', outcome: 'FAILED: chat text lost', messagesLost: 2, hostCrashes: 1 },
      ],
      61.6,
    );
    expect(text).toContain('| kill | SIGKILL engine during save | 3 | restore exact ×2; clean fallback (nothing stored) ×1 | 0 | 0 |');
    expect(text).toContain('| disk | full disk (tmpfs) | 1 | FAILED: chat text lost ×1 | 2 | 1 |');
    expect(text).toContain('| **total** | | **4** | 1 failed | **2** | **1** |');
    expect(text).toContain('Faults injected: 4. Failed outcomes: 1. Messages lost: 2. Host crashes: 1. Suite time: 62 s.');
  });
});

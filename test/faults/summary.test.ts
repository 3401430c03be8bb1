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

  it('shows messages the fault itself destroyed apart from those lost, in the row and the totals', () => {
    const text = summarize(
      [
        { area: 'database', fault: 'hearth.db overwritten with garbage', outcome: 'refused to start; the user keeps the damaged file, the chats are gone from the app', messagesLost: 0, messagesDestroyed: 7, hostCrashes: 0 },
        { area: 'kill', fault: 'SIGKILL engine during save', outcome: 'restore exact', messagesLost: 0, hostCrashes: 0 },
      ],
      10,
    );
    expect(text).toContain('| database | hearth.db overwritten with garbage | 1 | refused to start; the user keeps the damaged file, the chats are gone from the app ×1 | 0; 7 destroyed by the fault itself | 0 |');
    expect(text).toContain('| kill | SIGKILL engine during save | 1 | restore exact ×1 | 0 | 0 |');
    expect(text).toContain("Messages lost: 0. Messages destroyed by the injected fault itself (gone from the app; see those rows' outcomes): 7. Host crashes: 0.");
  });
});

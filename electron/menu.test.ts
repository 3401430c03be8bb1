import { describe, expect, it, vi } from 'vitest';
import { menuTemplate } from './menu.ts';

describe('app menu', () => {
  it('has the app menu on macOS only, and wires New Chat', () => {
    const actions = { newChat: vi.fn(), openSettings: vi.fn(), openModels: vi.fn() };
    const mac = menuTemplate('darwin', 'Hearth', actions);
    const linux = menuTemplate('linux', 'Hearth', actions);
    expect(mac[0]?.label).toBe('Hearth');
    expect(linux[0]?.label).toBe('File');
    const file = linux[0]?.submenu as Array<{ label?: string; click?: () => void; accelerator?: string }>;
    const newChat = file.find((i) => i.label === 'New Chat');
    expect(newChat?.accelerator).toBe('CmdOrCtrl+N');
    newChat?.click?.();
    expect(actions.newChat).toHaveBeenCalledOnce();
  });
});

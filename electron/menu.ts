/**
 * The application menu as data. Built with Electron's roles so that platform conventions
 * (macOS app menu, Edit shortcuts, window handling) come for free.
 */
import type { MenuItemConstructorOptions } from 'electron';

export interface MenuActions {
  readonly newChat: () => void;
  readonly openSettings: () => void;
  readonly openModels: () => void;
}

export function menuTemplate(platform: NodeJS.Platform, appName: string, actions: MenuActions): MenuItemConstructorOptions[] {
  const mac = platform === 'darwin';
  const template: MenuItemConstructorOptions[] = [];
  if (mac) {
    template.push({
      label: appName,
      submenu: [
        { role: 'about' },
        { type: 'separator' },
        { label: 'Settings…', accelerator: 'Cmd+,', click: actions.openSettings },
        { type: 'separator' },
        { role: 'hide' },
        { role: 'hideOthers' },
        { role: 'unhide' },
        { type: 'separator' },
        { role: 'quit' },
      ],
    });
  }
  template.push(
    {
      label: 'File',
      submenu: [
        { label: 'New Chat', accelerator: 'CmdOrCtrl+N', click: actions.newChat },
        { label: 'Models…', accelerator: 'CmdOrCtrl+Shift+M', click: actions.openModels },
        ...(mac ? [] : [{ label: 'Settings…', accelerator: 'Ctrl+,', click: actions.openSettings } as const]),
        { type: 'separator' },
        mac ? { role: 'close' } : { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    {
      label: 'View',
      submenu: [
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
        { role: 'toggleDevTools' },
      ],
    },
    { role: 'windowMenu' },
  );
  return template;
}

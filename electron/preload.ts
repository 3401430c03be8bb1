/**
 * The only bridge between the sandboxed page and main. It exposes two functions, nothing more:
 * no raw ipcRenderer, no Node. Payloads are validated in main, where they enter.
 * Sandboxed preloads must be a single CommonJS file (Electron's ESM doc); electron-vite bundles it so.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron';

contextBridge.exposeInMainWorld('hearth', {
  call: (name: string, input: unknown): Promise<unknown> => ipcRenderer.invoke('hearth:call', name, input),
  onEvent: (listener: (event: unknown) => void): (() => void) => {
    const handler = (_event: IpcRendererEvent, payload: unknown) => listener(payload);
    ipcRenderer.on('hearth:event', handler);
    return () => {
      ipcRenderer.removeListener('hearth:event', handler);
    };
  },
});

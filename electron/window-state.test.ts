import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fitToDisplays, loadWindowState, saveWindowState } from './window-state.ts';

const screen = { x: 0, y: 0, width: 1920, height: 1080 };

describe('window state', () => {
  it('round-trips through the file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'hearth-ws-')), 'window.json');
    saveWindowState(file, { bounds: { x: 10, y: 20, width: 900, height: 700 }, maximized: true });
    expect(loadWindowState(file)).toEqual({ bounds: { x: 10, y: 20, width: 900, height: 700 }, maximized: true });
  });

  it('ignores a missing or damaged file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-ws-'));
    expect(loadWindowState(join(dir, 'nope.json'))).toBeNull();
    writeFileSync(join(dir, 'bad.json'), '{"bounds": {"x": "a"}}');
    expect(loadWindowState(join(dir, 'bad.json'))).toBeNull();
    writeFileSync(join(dir, 'worse.json'), '{not json');
    expect(loadWindowState(join(dir, 'worse.json'))).toBeNull();
  });

  it('keeps bounds that are on a display', () => {
    expect(fitToDisplays({ x: 100, y: 100, width: 800, height: 600 }, [screen])).toEqual({ x: 100, y: 100, width: 800, height: 600 });
  });

  it('drops bounds from an unplugged monitor', () => {
    expect(fitToDisplays({ x: 3000, y: 100, width: 800, height: 600 }, [screen])).toBeNull();
  });

  it('pulls a half-visible window back inside and shrinks an oversized one', () => {
    expect(fitToDisplays({ x: 1500, y: -50, width: 800, height: 600 }, [screen])).toEqual({ x: 1120, y: 0, width: 800, height: 600 });
    expect(fitToDisplays({ x: 0, y: 0, width: 4000, height: 3000 }, [screen])).toEqual({ x: 0, y: 0, width: 1920, height: 1080 });
  });
});

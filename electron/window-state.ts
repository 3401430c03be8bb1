/**
 * Window size and position, remembered between runs. Pure logic (no `electron` import) so it
 * is unit-tested; main.ts feeds it the displays' work areas.
 */
import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Rect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

export interface WindowState {
  readonly bounds: Rect;
  readonly maximized: boolean;
}

export const defaultSize = { width: 1200, height: 800 } as const;
export const minSize = { width: 640, height: 480 } as const;

function isRect(v: unknown): v is Rect {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return ['x', 'y', 'width', 'height'].every((k) => typeof r[k] === 'number' && Number.isFinite(r[k]));
}

/** Reads the saved state; a missing or damaged file gives null (the window then opens centred). */
export function loadWindowState(file: string): WindowState | null {
  try {
    const raw: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof raw !== 'object' || raw === null) return null;
    const { bounds, maximized } = raw as Record<string, unknown>;
    if (!isRect(bounds)) return null;
    return { bounds, maximized: maximized === true };
  } catch {
    return null;
  }
}

/** Writes atomically, so a crash while saving never leaves a half-written file. */
export function saveWindowState(file: string, state: WindowState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, file);
}

function overlap(a: Rect, b: Rect): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

/**
 * Fits saved bounds to the displays present now: a window saved on a monitor that has since
 * been unplugged must not open off-screen. Returns null when no display shows enough of it.
 */
export function fitToDisplays(bounds: Rect, workAreas: readonly Rect[]): Rect | null {
  const best = workAreas
    .map((area) => ({ area, shown: overlap(bounds, area) }))
    .sort((a, b) => b.shown - a.shown)[0];
  // Less than a quarter visible (or a 100×100 patch) is as good as lost.
  if (!best || best.shown < Math.min((bounds.width * bounds.height) / 4, 100 * 100)) return null;
  const { area } = best;
  const width = Math.max(minSize.width, Math.min(bounds.width, area.width));
  const height = Math.max(minSize.height, Math.min(bounds.height, area.height));
  const x = Math.min(Math.max(bounds.x, area.x), area.x + area.width - width);
  const y = Math.min(Math.max(bounds.y, area.y), area.y + area.height - height);
  return { x, y, width, height };
}

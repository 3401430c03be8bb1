/**
 * Formatting shared by everything that shows figures to the user: the renderer, and the host and
 * engine texts it displays (the Cache view's event log), so that one screen uses one unit.
 */

/** Bytes in steps of 1000 ("1.50 MB"), or of 1024 with `binary` (the disk budget is typed in GB of 1024³ bytes). */
export function formatBytes(bytes: number, binary = false): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  const step = binary ? 1024 : 1000;
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= step && unit < units.length - 1) {
    value /= step;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  const text = value.toFixed(digits);
  // Binary figures sit beside a budget typed in whole GB: "10 GB", not "10.0 GB".
  return `${binary ? Number(text) : text} ${units[unit]}`;
}

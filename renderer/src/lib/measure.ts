/**
 * User-timing marks for the Cache view's work (`performance.measure("hearth:cache…")`): the e2e
 * test attributes long tasks to the dashboard by them (none over 50 ms may be the dashboard's),
 * and they show in the browser's performance panel.
 */

/** Browsers keep user timing entries until cleared: past this many, ours are dropped (minutes of ticks). */
const keep = 2000;
let recorded = 0;

export function measureSince(name: `hearth:cache${string}`, start: number): void {
  if (typeof performance === 'undefined' || typeof performance.measure !== 'function') return;
  performance.measure(name, { start, end: performance.now() });
  recorded += 1;
  if (recorded >= keep) {
    recorded = 0;
    const names = new Set(performance.getEntriesByType('measure').map((entry) => entry.name));
    for (const name of names) if (name.startsWith('hearth:cache')) performance.clearMeasures(name);
  }
}

/** Runs `work` and measures it. */
export function measured<T>(name: `hearth:cache${string}`, work: () => T): T {
  const start = performance.now();
  try {
    return work();
  } finally {
    measureSince(name, start);
  }
}

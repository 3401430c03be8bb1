/**
 * Which of a page's long tasks the Cache view is answerable for. A long task's total length says
 * little on a busy machine (the engine and the compositor preempt the page), so each task is
 * charged with the dashboard's own measured work inside it (its `hearth:cache…` user-timing
 * spans, renderer/src/lib/measure.ts): a task fails when that share is itself large, whatever
 * else the task held.
 */

/** A span on the page's clock (`performance.now()` milliseconds). */
export interface Span {
  readonly start: number;
  readonly duration: number;
}

/** A long task the dashboard spent at least this long in is the dashboard's. */
export const DASHBOARD_SHARE_LIMIT_MS = 20;

/** The long-task line: tasks past it block input noticeably. */
export const LONG_TASK_MS = 50;

/** Milliseconds of `task` covered by `work` (overlapping spans counted once). */
export function dashboardShare(task: Span, work: readonly Span[]): number {
  const end = task.start + task.duration;
  const clipped = work
    .map((w) => [Math.max(w.start, task.start), Math.min(w.start + w.duration, end)] as const)
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let reach = -Infinity;
  for (const [a, b] of clipped) {
    if (b <= reach) continue;
    total += b - Math.max(a, reach);
    reach = b;
  }
  return total;
}

export interface TaskShare {
  readonly taskMs: number;
  readonly dashboardMs: number;
}

/**
 * Each long task with the dashboard's share of it, and those the dashboard is answerable for:
 * it spent `limitMs` or more in the task, or its work is what took the task past LONG_TASK_MS.
 */
export function dashboardLongTasks(tasks: readonly Span[], work: readonly Span[], limitMs = DASHBOARD_SHARE_LIMIT_MS): { all: TaskShare[]; dashboards: TaskShare[] } {
  const all = tasks.map((t) => ({ taskMs: Math.round(t.duration), dashboardMs: Math.round(dashboardShare(t, work) * 10) / 10 }));
  const dashboards = all.filter((t) => t.dashboardMs >= limitMs || (t.dashboardMs > 0 && t.taskMs - t.dashboardMs <= LONG_TASK_MS));
  return { all, dashboards };
}

import { describe, expect, it } from 'vitest';
import { dashboardLongTasks, dashboardShare } from './long-tasks.ts';

describe('long tasks charged to the dashboard', () => {
  it('counts the dashboard work inside a task once, clipped to the task', () => {
    expect(dashboardShare({ start: 100, duration: 120 }, [{ start: 90, duration: 20 }, { start: 150, duration: 10 }, { start: 155, duration: 10 }, { start: 300, duration: 5 }])).toBe(10 + 15);
    expect(dashboardShare({ start: 0, duration: 60 }, [])).toBe(0);
  });

  it('a 120 ms task holding 40 ms of dashboard work is the dashboard\'s, though 80 ms of it were something else', () => {
    const { dashboards } = dashboardLongTasks([{ start: 0, duration: 120 }], [{ start: 10, duration: 40 }]);
    expect(dashboards).toEqual([{ taskMs: 120, dashboardMs: 40 }]);
  });

  it('25 ms of dashboard work in a long task fails; 19 ms in a long task that is mostly other work does not', () => {
    expect(dashboardLongTasks([{ start: 0, duration: 200 }], [{ start: 5, duration: 25 }]).dashboards).toHaveLength(1);
    expect(dashboardLongTasks([{ start: 0, duration: 200 }], [{ start: 5, duration: 19 }]).dashboards).toEqual([]);
  });

  it('still charges a task the dashboard pushed past 50 ms', () => {
    expect(dashboardLongTasks([{ start: 0, duration: 60 }], [{ start: 0, duration: 12 }]).dashboards).toEqual([{ taskMs: 60, dashboardMs: 12 }]);
  });
});

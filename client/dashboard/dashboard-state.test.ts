import { describe, expect, it } from 'vitest';
import type { JobView } from '../../shared/protocol.js';
import { DashboardState, formatEta, formatRate } from './dashboard-state.js';

function job(id: string, done: number, total: number, status: JobView['status'] = 'running'): JobView {
  return {
    id, name: null, status, model: 'm', items: total, batchSize: 1, replicas: 1, maxReplicas: 3, rtol: 0, atol: 0, priority: 0,
    adaptive: true, canaryRate: 0, createdAt: 0, finishedAt: null, error: null,
    tasks: { total, done, failed: 0, pending: total - done, running: 0, canaries: 0 }, replicasIssued: done, outputs: [], failures: [],
  } as unknown as JobView;
}

describe('dashboard state', () => {
  it('turns cumulative samples into tasks per second, carrying unchanged jobs forward', () => {
    const s = new DashboardState();
    s.addSample({ at: 0, done: { a: 0, b: 10 } });
    s.addSample({ at: 2000, done: { a: 4 } }); // b unchanged, so absent
    s.addSample({ at: 4000, done: { a: 8, b: 14 } });
    expect(s.throughput()).toEqual([{ at: 2000, perSec: 2 }, { at: 4000, perSec: 4 }]);
    expect(s.currentRate()).toBe(3); // 12 tasks in 4 s
    s.addSample({ at: 14_000, done: {} });
    expect(s.currentRate()).toBeCloseTo(12 / 14); // 12 tasks since the first sample, 14 s ago
    s.addSample({ at: 24_000, done: {} });
    expect(s.currentRate()).toBe(0); // nothing in the last 20 s

  });

  it('gives a running job its rate and ETA, and none to a finished one', () => {
    const s = new DashboardState();
    s.upsertJobs([job('a', 20, 100), job('b', 5, 5, 'completed')]);
    for (let t = 0; t <= 10; t++) s.addSample({ at: t * 1000, done: { a: t * 2 } });
    expect(s.jobRate('a')).toBe(2);
    expect(s.eta('a')).toBe(40_000); // 80 tasks left at 2 per second
    expect(s.eta('b')).toBeNull();
    expect(s.eta('missing')).toBeNull();
  });

  it('measures over the recent window only', () => {
    const s = new DashboardState();
    s.addSample({ at: 0, done: { a: 0 } });
    s.addSample({ at: 100_000, done: { a: 100 } });
    s.addSample({ at: 130_000, done: { a: 100 } });
    s.addSample({ at: 160_000, done: { a: 160 } });
    expect(s.jobRate('a', 30_000)).toBe(2);
    expect(s.jobRate('a', 60_000)).toBe(1);
  });

  it('sorts running jobs first, newest first', () => {
    const s = new DashboardState();
    s.upsertJobs([{ ...job('old', 1, 1, 'completed'), createdAt: 5 }, { ...job('r1', 0, 1), createdAt: 1 }, { ...job('r2', 0, 1), createdAt: 2 }]);
    expect(s.sortedJobs().map((j) => j.id)).toEqual(['r2', 'r1', 'old']);
  });

  it('formats ETAs and rates for people', () => {
    expect(formatEta(null)).toBe('–');
    expect(formatEta(42_000)).toBe('42 s');
    expect(formatEta(180_000)).toBe('3 min');
    expect(formatEta(4_800_000)).toBe('1 h 20 min');
    expect(formatRate(0.523)).toBe('0.52');
    expect(formatRate(12.34)).toBe('12.3');
    expect(formatRate(1400)).toBe('1,400');
  });
});

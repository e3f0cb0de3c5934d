import { describe, expect, it } from 'vitest';
import type { JobView } from '../shared/protocol.js';
import { ProgressBar } from './progress.js';

const job = (patch: Partial<JobView> & { tasks: JobView['tasks'] }): JobView => ({
  id: 'job-1', name: null, status: 'running', model: 'm', items: 4, batchSize: 2, replicas: 2, maxReplicas: 5, rtol: 1e-3, atol: 1e-4,
  priority: 0, adaptive: true, canaryRate: 0, createdAt: 0, finishedAt: null, error: null,
  replicasIssued: 0, outputs: [], stages: [], failures: [], tainted: 0, ...patch,
});

/** A large job partway through, with failures: the longest line the bar draws. */
const busy = job({ tasks: { total: 12_000, done: 6_543, failed: 17, pending: 5_300, running: 140, canaries: 0 }, replicasIssued: 13_456 });
const fresh = job({ tasks: { total: 0, done: 0, failed: 0, pending: 0, running: 0, canaries: 0 } });
const ended = job({ status: 'completed', tasks: { total: 12_000, done: 12_000, failed: 0, pending: 0, running: 0, canaries: 0 }, replicasIssued: 24_100 });

/** A terminal (or a pipe, with `isTTY: false`) that records what the bar writes. */
function terminal(isTTY: boolean, columns?: number): { out: NodeJS.WriteStream; writes: string[] } {
  const writes: string[] = [];
  const out = { isTTY, columns, write: (s: string) => { writes.push(s); return true; } };
  return { out: out as unknown as NodeJS.WriteStream, writes };
}

/** What the terminal shows of one redraw: no carriage return, no escape sequences. */
const visible = (s: string): string => s.replace(/\r|\n/g, '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

describe('ProgressBar on a terminal', () => {
  for (const columns of [80, 40]) {
    it(`keeps every redraw within ${columns - 1} visible characters on ${columns} columns`, () => {
      const { out, writes } = terminal(true, columns);
      const bar = new ProgressBar(out);
      for (const j of [fresh, busy, ended]) bar.update(j);
      expect(writes).toHaveLength(3);
      for (const w of writes) {
        expect(w.startsWith('\r')).toBe(true);
        expect(visible(w).length).toBeLessThanOrEqual(columns - 1);
      }
      // Still says how far the job is and whether it is in trouble.
      expect(visible(writes[1]!)).toContain('54% 6543/12000');
      expect(visible(writes[1]!)).toContain('17 failed');
      expect(visible(writes[1]!)).toMatch(/running$/);
      expect(visible(writes[2]!)).toMatch(/100% 12000\/12000.* completed$/);
    });
  }

  it('keeps the bar and every detail of a mid-sized job on 80 columns, and shrinks the bar first', () => {
    const { out, writes } = terminal(true, 80);
    new ProgressBar(out).update(job({ tasks: { total: 100, done: 45, failed: 2, pending: 50, running: 3, canaries: 0 }, replicasIssued: 120 }));
    expect(visible(writes[0]!)).toBe('[#####-------] 45% 45/100 tasks · 3 running · 120 replicas · 2 failed · running');
  });

  it('takes 80 columns for a terminal that does not report its width', () => {
    const { out, writes } = terminal(true, undefined);
    new ProgressBar(out).update(busy);
    expect(visible(writes[0]!).length).toBeLessThanOrEqual(79);
  });

  it('never writes past the width on a very narrow terminal', () => {
    for (const columns of [2, 10, 20, 25]) {
      const { out, writes } = terminal(true, columns);
      new ProgressBar(out).update(busy);
      expect(visible(writes[0]!).length, `${columns} columns`).toBeLessThanOrEqual(columns - 1);
    }
  });
});

describe('ProgressBar into a pipe', () => {
  it('prints whole lines with the full-width bar: a log file has no width to fit', () => {
    const { out, writes } = terminal(false);
    new ProgressBar(out).update(busy);
    expect(writes).toEqual(['[################--------------] 54% 6543/12000 tasks · 140 running · 13456 replicas · 17 failed · running\n']);
  });
});

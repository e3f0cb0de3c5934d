/**
 * The metrics follow the event bus and read counts of state when scraped; each app has a registry of its own.
 */
import { describe, expect, it } from 'vitest';
import { AppEvents } from '../events.js';
import { Metrics } from './metrics.js';

/** The value of one sample (`name{labels} value`) in an exposition; undefined when absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function setup() {
  const jobs: string[] = [];
  const workers: { kind: string; backends: string[] }[] = [];
  const jobCounts = () => {
    const counts: Record<string, number> = {};
    for (const s of jobs) counts[s] = (counts[s] ?? 0) + 1;
    return counts;
  };
  const metrics = new Metrics({ jobCounts, workers: () => workers });
  const events = new AppEvents();
  metrics.attach(events);
  const scrape = async () => (await metrics.scrape()).body;
  return { jobs, workers, metrics, events, scrape };
}

describe('Metrics', () => {
  it('counts what the bus reports', async () => {
    const s = setup();
    s.events.emit('result:judged', 'accepted', 2);
    s.events.emit('result:judged', 'disagreed', 1);
    s.events.emit('task:accepted', 3, 'quorum');
    s.events.emit('task:settled', 'done', false);
    s.events.emit('lease:expired');
    s.events.emit('audit:judged', true);
    s.events.emit('volunteer:quarantined', 'v1');
    s.events.emit('server-run:done', 'audit', true, 40);
    s.events.emit('socket:answered', 'task:result', 3);
    s.events.emit('tick:committed', 5, 2, true);
    s.metrics.storeWrite('updateTask', 0.00002);
    const text = await s.scrape();
    expect(sample(text, 'tabgrid_results_total', 'verdict="accepted"')).toBe(2);
    expect(sample(text, 'tabgrid_results_total', 'verdict="disagreed"')).toBe(1);
    expect(sample(text, 'tabgrid_results_total', 'verdict="refused"')).toBe(0);
    expect(sample(text, 'tabgrid_task_replicas_sum', 'decided_by="quorum"')).toBe(3);
    expect(sample(text, 'tabgrid_tasks_settled_total', 'outcome="done",canary="false"')).toBe(1);
    expect(sample(text, 'tabgrid_lease_expiries_total')).toBe(1);
    expect(sample(text, 'tabgrid_audits_total', 'outcome="refuted"')).toBe(1);
    expect(sample(text, 'tabgrid_audits_total', 'outcome="upheld"')).toBe(0);
    expect(sample(text, 'tabgrid_quarantines_total')).toBe(1);
    expect(sample(text, 'tabgrid_server_runs_total', 'kind="audit",outcome="ok"')).toBe(1);
    expect(sample(text, 'tabgrid_server_run_seconds_sum', 'kind="audit"')).toBeCloseTo(0.04);
    expect(sample(text, 'tabgrid_dispatch_seconds_bucket', 'le="0.005",event="task:result"')).toBe(1);
    expect(sample(text, 'tabgrid_dispatch_seconds_bucket', 'le="0.0025",event="task:result"')).toBe(0);
    expect(sample(text, 'tabgrid_commit_seconds_count', 'outcome="committed"')).toBe(1);
    expect(sample(text, 'tabgrid_commit_events_sum')).toBe(5);
    expect(sample(text, 'tabgrid_store_write_seconds_count', 'op="updateTask"')).toBe(1);
    // Node's process metrics are there (CPU time is counted from registration in clock ticks: it may still be 0).
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('reads jobs by status and workers online when scraped', async () => {
    const s = setup();
    expect(sample(await s.scrape(), 'tabgrid_jobs', 'status="completed"')).toBe(0);
    s.jobs.push('completed', 'running', 'completed');
    s.workers.push({ kind: 'browser', backends: ['webgpu', 'wasm'] }, { kind: 'browser', backends: ['webgpu'] }, { kind: 'node', backends: [] });
    let text = await s.scrape();
    expect(sample(text, 'tabgrid_jobs', 'status="completed"')).toBe(2);
    expect(sample(text, 'tabgrid_jobs', 'status="running"')).toBe(1);
    expect(sample(text, 'tabgrid_jobs', 'status="failed"')).toBe(0);
    expect(sample(text, 'tabgrid_workers_online', 'kind="browser",backend="webgpu"')).toBe(2);
    expect(sample(text, 'tabgrid_workers_online', 'kind="node",backend="none"')).toBe(1);
    // A worker that left is gone from the next scrape, not left at its last value.
    s.workers.splice(2, 1);
    text = await s.scrape();
    expect(sample(text, 'tabgrid_workers_online', 'kind="node",backend="none"')).toBeUndefined();
  });

  it('keeps each app\'s counts apart, and stops counting once detached', async () => {
    const a = setup();
    const b = setup();
    a.events.emit('lease:expired');
    expect(sample(await a.scrape(), 'tabgrid_lease_expiries_total')).toBe(1);
    expect(sample(await b.scrape(), 'tabgrid_lease_expiries_total')).toBe(0);
    a.metrics.detach();
    a.events.emit('lease:expired');
    expect(sample(await a.scrape(), 'tabgrid_lease_expiries_total')).toBe(1);
    expect(a.events.listenerCount('lease:expired')).toBe(0);
  });
});

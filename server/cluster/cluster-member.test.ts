/**
 * The member's duties, with the claims' SQL stood in for: alive from construction (a slow start is no death), no work
 * taken before it starts, and a server the others declared dead stops at once.
 */
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { SlicedLiveStore } from '../state/sliced-live-store.js';
import { type Claims, ClusterMember } from './cluster-member.js';

function fakeClaims(): Claims & { calls: string[]; dead: boolean } {
  const calls: string[] = [];
  const c = {
    serverId: 's1', calls, dead: false,
    register: (url: string | null) => { calls.push(`register ${url}`); },
    heartbeat: () => {
      calls.push('heartbeat');
      if (c.dead) throw Object.assign(new Error('server s1 has lost its claims'), { code: 'TG001' });
    },
    declareDead: () => { calls.push('declareDead'); return []; },
    peers: () => [],
    jobStatuses: () => [],
    claim: () => { calls.push('claim'); return []; },
    release: () => {},
    finish: () => {},
    finishedRunningJobs: () => [],
    leave: () => { calls.push('leave'); },
  };
  return c;
}

const live = { runningJobs: () => [], heldSlicesList: () => [], wantingCount: () => 0 } as unknown as SlicedLiveStore;
const scheduler = { connectedWorkers: 1 } as unknown as Scheduler;

describe('ClusterMember', () => {
  afterEach(() => { vi.useRealTimers(); });

  it('says it is alive from the start, and takes part only once started', async () => {
    vi.useFakeTimers();
    const claims = fakeClaims();
    const member = new ClusterMember({ claims, live, scheduler, log: pino({ level: 'silent' }), tickMs: 100, ttlMs: 1000, fenced: () => {} });
    member.keepAlive();
    await vi.advanceTimersByTimeAsync(350);
    expect(claims.calls).toEqual(['heartbeat', 'heartbeat', 'heartbeat']);
    await member.start('http://a.example');
    expect(claims.calls.slice(3)).toEqual(['register http://a.example', 'heartbeat', 'declareDead', 'claim']);
    member.stop();
    expect(claims.calls.at(-1)).toBe('leave');
  });

  it('does not tell the others back of a job it learned from them', async () => {
    const claims = fakeClaims();
    claims.jobStatuses = () => [{ id: 'j', status: 'running' }];
    const job = { id: 'j', status: 'running' };
    const learned = { ...live, refreshJob: () => job, learnJob: () => {} } as unknown as SlicedLiveStore;
    const sent: unknown[] = [];
    let member: ClusterMember | null = null;
    // Taking the job in emits its change, which reaches jobsChanged as any job's change does (app.ts wires it so).
    const noting = { connectedWorkers: 0, jobCreated: () => member!.jobsChanged() } as unknown as Scheduler;
    member = new ClusterMember({ claims, live: learned, scheduler: noting, log: pino({ level: 'silent' }), tickMs: 100, ttlMs: 1000, fenced: () => {} });
    member.setBus({ send: (m) => sent.push(m), onMessage: () => {} });
    await member.start('http://a.example');
    expect(sent).toEqual([]);
    member.jobsChanged();
    expect(sent).toEqual([{ kind: 'jobs' }]);
    member.stop();
  });

  it('stops at once when the others declared it dead', async () => {
    vi.useFakeTimers();
    const claims = fakeClaims();
    const fenced = vi.fn();
    const member = new ClusterMember({ claims, live, scheduler, log: pino({ level: 'silent' }), tickMs: 100, ttlMs: 1000, fenced });
    await member.start('http://a.example');
    claims.dead = true;
    await vi.advanceTimersByTimeAsync(500);
    expect(fenced).toHaveBeenCalledTimes(1);
    expect(claims.calls.filter((c) => c === 'heartbeat')).toHaveLength(2);
  });

  it('runs one tick at a time while the database answers, and the one asked for meanwhile after it', async () => {
    const claims = fakeClaims();
    let answer = () => {};
    claims.declareDead = () => { claims.calls.push('declareDead'); return new Promise<string[]>((r) => { answer = () => r([]); }); };
    const member = new ClusterMember({ claims, live, scheduler, log: pino({ level: 'silent' }), tickMs: 60_000, ttlMs: 1000, fenced: () => {} });
    const first = member.start('http://a.example');
    await new Promise((r) => setImmediate(r));
    void member.tick();
    void member.tick();
    expect(claims.calls).toEqual(['register http://a.example', 'heartbeat', 'declareDead']);
    answer();
    await first;
    await new Promise((r) => setImmediate(r));
    // One more round, not two: the ticks asked for while the first was out are one.
    expect(claims.calls.filter((c) => c === 'heartbeat')).toHaveLength(2);
    answer();
    member.stop();
  });

  it('finishes a slice with leases still out only once they are back, or withdrawn after the time to live', async () => {
    vi.useFakeTimers();
    const claims = fakeClaims();
    const finished: string[] = [];
    claims.finish = (slices) => { finished.push(...slices.map((s) => `${s.jobId}/${s.slice}`)); };
    const held = [{ jobId: 'j', slice: 0 }, { jobId: 'j', slice: 1 }];
    // No open task left in either; slice 0 has a known-answer probe out, slice 1 nothing.
    const leases = new Map([[0, [{ id: 'r-probe' }]], [1, []]]);
    const dropped: number[] = [];
    const slices = {
      ...live,
      heldSlicesList: () => held.filter((s) => !dropped.includes(s.slice)),
      openInSlice: () => 0,
      leasesInSlice: (_: string, slice: number) => leases.get(slice)!,
      dropSlice: (_: string, slice: number) => { dropped.push(slice); },
    } as unknown as SlicedLiveStore;
    const withdrawn: string[][] = [];
    const sched = { connectedWorkers: 1, withdrawLeases: (ids: string[]) => { withdrawn.push(ids); leases.set(0, []); } } as unknown as Scheduler;
    const member = new ClusterMember({ claims, live: slices, scheduler: sched, log: pino({ level: 'silent' }), tickMs: 100, ttlMs: 1000, fenced: () => {} });
    await member.start('http://a.example');
    expect(finished).toEqual(['j/1']);
    await vi.advanceTimersByTimeAsync(500);
    // The probe's result may still come back to a slice held here: not finished, nothing withdrawn.
    expect(finished).toEqual(['j/1']);
    expect(withdrawn).toEqual([]);
    await vi.advanceTimersByTimeAsync(600);
    expect(withdrawn).toEqual([['r-probe']]);
    expect(finished).toEqual(['j/1', 'j/0']);
    expect(dropped).toEqual([1, 0]);
    member.stop();
  });

  it('computes the known answers of a slice it takes that still wait for one (the job\'s creator writes only to the store)', async () => {
    const claims = fakeClaims();
    claims.claim = () => [{ jobId: 'j', slice: 0 }];
    claims.jobStatuses = () => [{ id: 'j', status: 'running' }];
    const canary = { id: 'j-c', canary: true, ready: false, status: 'pending', batch: 3 };
    const slices = {
      ...live, runningJobs: () => [{ id: 'j', priority: 0, createdAt: 0 }], takeSlice: () => [],
      unreadyCanariesOfSlice: (jobId: string, slice: number) => (jobId === 'j' && slice === 0 ? [canary] : []),
    } as unknown as SlicedLiveStore;
    const queued: unknown[] = [];
    const sched = { connectedWorkers: 1, decideAgain: () => {} } as unknown as Scheduler;
    const member = new ClusterMember({
      claims, live: slices, scheduler: sched, log: pino({ level: 'silent' }), tickMs: 100, ttlMs: 1000, fenced: () => {},
      computeCanaries: (tasks) => queued.push(...tasks),
    });
    await member.start('http://a.example');
    await vi.waitFor(() => expect(queued).toEqual([canary]));
    member.stop();
  });
});

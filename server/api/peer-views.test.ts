import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { WorkerView } from '../../shared/dashboard-protocol.js';
import { networkWorkers, peerViews } from './peer-views.js';
import type { TabGridIo, WorkerInfo } from './worker-socket.js';

/** socket.io's server-side events between servers, as this server sees them: what it sends, and a way to hear from peers. */
function fakeIo() {
  const sent: unknown[][] = [];
  const listeners = new Map<string, (...args: unknown[]) => void>();
  let onSend: () => void = () => {};
  let answers: unknown[] = [];
  const io = {
    serverSideEmit(event: string, ...args: unknown[]) {
      const last = args[args.length - 1];
      if (typeof last === 'function') (last as (err: Error | null, r: unknown[]) => void)(null, answers);
      else { sent.push([event, ...args]); onSend(); }
      return true;
    },
    on(event: string, fn: (...args: unknown[]) => void) { listeners.set(event, fn); },
  };
  return {
    io: io as unknown as TabGridIo,
    sent,
    nextSend: () => new Promise<void>((r) => { onSend = r; }),
    hear: (event: string, ...args: unknown[]) => listeners.get(event)!(...args),
    answer: (a: unknown[]) => { answers = a; },
  };
}

const worker = (id: string, at: number, server?: string): WorkerView => ({
  workerId: id, volunteerId: `v-${id}`, kind: 'node', backends: ['cpu'], site: null, origin: '127.0.0.1', connectedAt: at, ...(server ? { server } : {}),
});

/** This server's table of connected workers. */
const table = (...ids: [string, number][]): Map<string, WorkerInfo> => new Map(ids.map(([id, at]) => [id, {
  workerId: id, volunteerId: `v-${id}`, kind: 'node', backends: ['cpu'], site: null, origin: '127.0.0.1', connectedAt: at, interactive: false,
}]));

const make = (f: ReturnType<typeof fakeIo>, workers = table()) =>
  peerViews({ io: f.io, log: pino({ level: 'silent' }), self: () => 'http://a', workers, everyMs: 5 });

describe('peer views', () => {
  it('tells the others of the tasks its workers hold while there are any, once more when none are left, and sums what they tell', () => {
    vi.useFakeTimers();
    try {
      const f = fakeIo();
      let mine = new Map([['j1', new Map([[0, 3]])]]);
      const peers = peerViews({ io: f.io, log: pino({ level: 'silent' }), self: () => 'http://a', workers: table(), everyMs: 5, running: () => mine });
      vi.advanceTimersByTime(5);
      expect(f.sent).toEqual([['cluster:running', { from: 'http://a', jobs: { j1: [[0, 3]] } }]]);
      mine = new Map();
      vi.advanceTimersByTime(5);
      expect(f.sent[1]).toEqual(['cluster:running', { from: 'http://a', jobs: {} }]);
      vi.advanceTimersByTime(50); // ten more rounds with nothing held: nothing more said
      expect(f.sent).toHaveLength(2);

      f.hear('cluster:running', { from: 'http://b', jobs: { j1: [[0, 2], [1, 1]] } });
      f.hear('cluster:running', { from: 'http://c', jobs: { j1: [[0, 4]], j2: [[0, 1]] } });
      f.hear('cluster:running', { from: 'http://d', jobs: { j1: [[0, -1]] } }); // malformed: dropped
      expect([...peers.runningElsewhere('j1')!]).toEqual([[0, 6], [1, 1]]);
      f.hear('cluster:running', { from: 'http://c', jobs: {} });
      expect([...peers.runningElsewhere('j1')!]).toEqual([[0, 2], [1, 1]]);
      expect(peers.runningElsewhere('j3')).toBeUndefined();
      // A server silent for three rounds (dead, say) is not counted any more; within them it still is.
      vi.advanceTimersByTime(15);
      expect([...peers.runningElsewhere('j1')!]).toEqual([[0, 2], [1, 1]]);
      vi.advanceTimersByTime(1);
      expect(peers.runningElsewhere('j1')).toBeUndefined();
      peers.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('tells the others of the jobs changed here in one message per window, each job once', async () => {
    const f = fakeIo();
    const peers = make(f);
    const sent = f.nextSend();
    for (const id of ['j1', 'j2', 'j1', 'j3']) peers.jobChanged(id);
    await sent;
    expect(f.sent).toEqual([['cluster:jobs-changed', ['j1', 'j2', 'j3']]]);
    peers.stop();
  });

  it('splits a window of many changed jobs into bounded messages', async () => {
    const f = fakeIo();
    const peers = make(f);
    const sent = f.nextSend();
    for (let i = 0; i < 1_200; i++) peers.jobChanged(`j${i}`);
    await sent;
    expect(f.sent.map((m) => (m[1] as string[]).length)).toEqual([500, 500, 200]);
    peers.stop();
  });

  it('passes on the job ids another server sends, and drops a malformed list', () => {
    const f = fakeIo();
    const peers = make(f);
    const heard: string[][] = [];
    peers.onJobsChanged((ids) => heard.push(ids));
    f.hear('cluster:jobs-changed', ['j1', 'j2']);
    f.hear('cluster:jobs-changed', 'not a list');
    f.hear('cluster:jobs-changed', [42]);
    f.hear('cluster:jobs-changed', Array.from({ length: 501 }, (_, i) => `j${i}`));
    expect(heard).toEqual([['j1', 'j2']]);
  });

  it('answers the others with its own workers, and merges theirs, oldest first, dropping a malformed answer', async () => {
    const f = fakeIo();
    const here = table(['w-here', 20]);
    const peers = make(f, here);
    let answered: unknown = null;
    f.hear('cluster:workers', (list: unknown) => { answered = list; });
    expect(answered).toEqual([worker('w-here', 20, 'http://a')]);

    f.answer([[worker('w-b', 10, 'http://b')], [{ workerId: 'w-c' }], 'nonsense', [worker('w-d', 30, 'http://d')]]);
    const all = await networkWorkers(here, peers);
    expect(all.map((w) => [w.workerId, w.server])).toEqual([['w-b', 'http://b'], ['w-here', 'http://a'], ['w-d', 'http://d']]);
  });

  it('asks the others once for the callers who ask meanwhile', async () => {
    const f = fakeIo();
    const peers = make(f);
    let asked = 0;
    const emit = f.io.serverSideEmit.bind(f.io) as (...args: unknown[]) => boolean;
    let answer: () => void = () => {};
    (f.io as unknown as { serverSideEmit: (...args: unknown[]) => boolean }).serverSideEmit = (...args) => {
      asked++;
      answer = () => emit(...args);
      return true;
    };
    const both = Promise.all([peers.workers(), peers.workers()]);
    answer();
    await both;
    expect(asked).toBe(1);
    // Once answered, the next caller asks again.
    void peers.workers();
    expect(asked).toBe(2);
  });

  it('lists only this server\'s workers, saying no server, on a lone server', async () => {
    expect(await networkWorkers(table(['w', 1]), undefined)).toEqual([worker('w', 1)]);
  });
});

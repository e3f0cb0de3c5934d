/**
 * Many idle workers: each connects, says worker:hello and asks for 2 slots, then holds whatever it is
 * given. Records when pushed tasks (task:assign) arrive, for the time-to-assign figure.
 */
import { io, type Socket } from 'socket.io-client';
import type { TaskAssignment } from '../../shared/protocol.js';
import { type Msg, serveParent } from './proc.js';

const sockets: Socket[] = [];
let arrivals: number[] = [];
let received = 0;
const now = () => performance.timeOrigin + performance.now();

function connectOne(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 60_000 });
    sockets.push(s);
    s.on('task:assign', (tasks: TaskAssignment[]) => { arrivals.push(now()); received += tasks.length; });
    s.once('connect_error', (err) => { sockets.splice(sockets.indexOf(s), 1); s.close(); reject(err); });
    s.once('connect', () => {
      s.emit('worker:hello', { kind: 'node', backends: ['cpu'], agent: 'tabgrid-bench idle worker' }, (hello: { ok: boolean; error?: { message: string } }) => {
        if (!hello.ok) { reject(new Error(hello.error?.message)); return; }
        s.emit('work:request', { slots: 2 }, (res: { ok: boolean; tasks?: TaskAssignment[]; error?: { message: string } }) => {
          if (!res.ok) { reject(new Error(res.error?.message)); return; }
          received += res.tasks?.length ?? 0;
          resolve();
        });
      });
    });
  });
}

serveParent({
  /** Connects more workers until `total` are connected, `parallel` at a time. */
  connect: async (m: Msg) => {
    const { url, total, parallel, seconds } = m as unknown as { url: string; total: number; parallel: number; seconds: number };
    const t0 = performance.now();
    let told = performance.now();
    let failed = 0;
    let ready = sockets.length;
    while (ready < total) {
      if (performance.now() - t0 > seconds * 1000) break;
      const n = Math.min(parallel, total - ready);
      const outcomes = await Promise.allSettled(Array.from({ length: n }, () => connectOne(url)));
      for (const o of outcomes) if (o.status === 'fulfilled') ready++; else failed++;
      if (performance.now() - told > 10_000) {
        told = performance.now();
        process.stdout.write(`${ready} connected after ${((told - t0) / 1000).toFixed(0)} s\n`);
      }
    }
    return { connected: ready, failed, seconds: (performance.now() - t0) / 1000 };
  },
  reset: () => { arrivals = []; received = 0; return {}; },
  arrivals: () => ({ pushes: arrivals.length, tasks: received, first: arrivals[0] ?? null, last: arrivals.at(-1) ?? null }),
  /** One work:request round trip from an already connected worker, timed. */
  request: (m: Msg) => new Promise((resolve) => {
    const s = sockets[Number(m.index ?? 0)];
    const t0 = performance.now();
    s.emit('work:request', { slots: 1 }, (res: { ok: boolean; tasks?: unknown[] }) => resolve({ ms: performance.now() - t0, tasks: res.tasks?.length ?? 0 }));
  }),
  close: () => {
    for (const s of sockets) s.disconnect();
    sockets.length = 0;
    return {};
  },
});

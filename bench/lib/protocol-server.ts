/**
 * The protocol's own ceiling: a socket.io server that speaks TabGrid's worker protocol (hello,
 * work:request answered with tasks carrying binary inputs, task:result acknowledged) and does nothing
 * else: no validation, no scheduling, no store. What the real server adds shows as the gap to this.
 */
import { serveIo } from './io-server.js';

const bytes = Number(process.argv[2] ?? 1024);
const width = Math.max(1, Math.floor(bytes / 4));
const input = Buffer.alloc(width * 4, 1);
let seq = 0;
const task = () => {
  const id = (seq++).toString(16).padStart(16, '0');
  return {
    replicaId: `r-${id}`, taskId: `t-${id}`, jobId: 'job-bench', modelHash: 'f'.repeat(64), modelUrl: `/models/${'f'.repeat(64)}`,
    inputs: [{ name: 'x', dtype: 'float32', dims: [1, width], data: input }], leaseMs: 120_000,
  };
};

serveIo((socket) => {
  socket.on('worker:hello', (_hello: unknown, ack: (r: unknown) => void) => {
    ack({ ok: true, workerId: `w-${socket.id}`, volunteerId: `v-${socket.id}`, token: 'x'.repeat(48) });
  });
  socket.on('work:request', (req: { slots: number }, ack: (r: unknown) => void) => {
    ack({ ok: true, tasks: Array.from({ length: req.slots }, task) });
  });
  // `next: n` asks for n more tasks in the result's ack: one round trip per task.
  socket.on('task:result', (res: { next?: number }, ack: (r: unknown) => void) => {
    ack({ ok: true, accepted: true, ...(res.next ? { tasks: Array.from({ length: res.next }, task) } : {}) });
  });
});

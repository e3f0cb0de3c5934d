/**
 * Fast fake workers for the dispatch figure: the real WorkLoop (the protocol code the page and the
 * headless worker run), with a Runner that answers at once. The benchmark's model is Identity, so
 * returning the inputs under the output's name is the right answer, which canaries and quorums accept.
 */
import { clientParser } from '../../client/net/socket-parser.js';
import { type RunOutcome, type Runner, WorkLoop } from '../../client/net/work-loop.js';
import type { TaskAssignment } from '../../shared/protocol.js';
import { type DType, asBytes } from '../../shared/tensor.js';
import { io, type Socket } from 'socket.io-client';
import { type Msg, serveParent, sleep } from './proc.js';

class EchoRunner implements Runner {
  constructor(private readonly output: string) {}
  run(task: TaskAssignment): Promise<RunOutcome> {
    const x = task.inputs[0];
    return Promise.resolve({
      outputs: [{ name: this.output, dtype: x.dtype as DType, dims: x.dims, data: asBytes(x.data) }], runMs: 0, backend: 'cpu',
    });
  }
}

/**
 * A minimal fake worker (no WorkLoop): each task:result carries `next: 1`, and its ack brings the
 * next task, as the WorkLoop does too; what the WorkLoop costs on top shows as the gap between the two. Only
 * bench/lib/protocol-server.ts understands it.
 */
class PiggybackWorker {
  readonly status = { connected: false, tasksDone: 0, lastError: null as string | null };
  private readonly socket: Socket;

  constructor(url: string, private readonly slots: number, private readonly output: string) {
    this.socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, parser: clientParser });
    this.socket.on('connect', () => {
      this.socket.emit('worker:hello', { kind: 'node', backends: ['cpu'] }, () => {
        this.status.connected = true;
        this.socket.emit('work:request', { slots: this.slots }, (res: { tasks: TaskAssignment[] }) => res.tasks.forEach((t) => this.run(t)));
      });
    });
  }

  private run(task: TaskAssignment): void {
    const x = task.inputs[0];
    this.socket.emit('task:result', {
      replicaId: task.replicaId, backend: 'cpu', runMs: 0, next: 1,
      outputs: [{ name: this.output, dtype: x.dtype, dims: x.dims, data: asBytes(x.data) }],
    }, (res: { ok: boolean; tasks?: TaskAssignment[]; error?: { message: string } }) => {
      if (!res.ok) { this.status.lastError = res.error?.message ?? 'refused'; return; }
      this.status.tasksDone++;
      for (const t of res.tasks ?? []) this.run(t);
    });
  }

  stop(): void {
    this.socket.disconnect();
  }
}

let loops: (WorkLoop | PiggybackWorker)[] = [];

async function start(m: Msg): Promise<object> {
  const { url, clients, slots, output, piggyback } = m as unknown as { url: string; clients: number; slots: number; output: string; piggyback?: boolean };
  // Each fake worker on a loopback address of its own, as volunteers are on addresses of their own: replicas from
  // one origin would all go to the server's own run.
  loops = Array.from({ length: clients }, (_, i) => piggyback ? new PiggybackWorker(url, slots, output) : new WorkLoop({
    serverUrl: url, slots, runner: new EchoRunner(output), hello: { kind: 'node', backends: ['cpu'], agent: 'tabgrid-bench fake worker' },
    bind: `127.0.${1 + Math.floor((i + 1) / 254)}.${1 + ((i + 1) % 254)}`,
  }));
  for (const l of loops) if (l instanceof WorkLoop) l.start();
  const deadline = Date.now() + 30_000;
  while (loops.some((l) => !l.status.connected)) {
    if (Date.now() > deadline) throw new Error(`only ${loops.filter((l) => l.status.connected).length} of ${clients} fake workers connected`);
    await sleep(20);
  }
  return { connected: loops.length };
}

serveParent({
  start,
  mark: () => ({
    count: loops.reduce((n, l) => n + l.status.tasksDone, 0),
    errors: loops.map((l) => l.status.lastError).filter(Boolean).slice(0, 3),
    t: performance.timeOrigin + performance.now(),
  }),
  stop: () => {
    for (const l of loops) l.stop();
    loops = [];
    return {};
  },
});

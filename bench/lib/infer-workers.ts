/**
 * Headless workers for the interactive bench, in a process of their own (the real WorkLoop on onnxruntime-node),
 * each from its own loopback address and, when asked, behind a TCP proxy that delays every chunk by half the
 * given round trip each way (a worker far away). Reports each worker's counts on `mark`.
 */
import net from 'node:net';
import { NodeRunner } from '../../cli/node-runner.js';
import { WorkLoop } from '../../client/net/work-loop.js';
import { type Msg, serveParent } from './proc.js';

interface Spec { delayMs: number; bind: string }

const loops: WorkLoop[] = [];
const runners: NodeRunner[] = [];
const proxies: net.Server[] = [];

/** A local port that forwards to `target` from `bind`, delaying each chunk by `oneWayMs` in each direction. */
async function delayProxy(target: URL, bind: string, oneWayMs: number): Promise<string> {
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: target.hostname, port: Number(target.port), localAddress: bind });
    // Small messages must not wait for Nagle's algorithm (40 ms with delayed acks): the delay is the one asked for.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) => setTimeout(() => { if (!to.destroyed) to.write(chunk); }, oneWayMs));
      from.on('close', () => setTimeout(() => to.destroy(), oneWayMs));
      from.on('error', () => to.destroy());
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxies.push(server);
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

async function start(m: Msg): Promise<object> {
  const { url, workers, slots } = m as unknown as { url: string; workers: Spec[]; slots: number };
  for (const w of workers) {
    const runner = new NodeRunner();
    const serverUrl = w.delayMs > 0 ? await delayProxy(new URL(url), w.bind, w.delayMs / 2) : url;
    const loop = new WorkLoop({ serverUrl, slots, runner, hello: { kind: 'node', backends: ['cpu'] }, bind: w.delayMs > 0 ? undefined : w.bind });
    loop.start();
    loops.push(loop);
    runners.push(runner);
  }
  return { started: loops.length };
}

serveParent({
  start,
  mark: () => ({ workers: loops.map((l) => ({ served: l.status.interactiveServed, tasks: l.status.tasksDone, connected: l.status.connected })) }),
  stop: async () => {
    for (const l of loops) l.stop();
    for (const r of runners) await r.close();
    for (const p of proxies) p.close();
    return {};
  },
});

/**
 * `tabgrid worker`: a headless volunteer on onnxruntime-node, speaking the same protocol as the page.
 */
import { type LoopStatus, WorkLoop } from '../client/net/work-loop.js';
import { NodeRunner } from './node-runner.js';

export async function runWorker(o: { server: string; slots?: number; token?: string }, say: (s: string) => void): Promise<void> {
  const runner = new NodeRunner();
  let last: LoopStatus | null = null;
  const loop = new WorkLoop({
    serverUrl: o.server, slots: o.slots, token: o.token, runner,
    hello: { kind: 'node', backends: ['cpu'], agent: `tabgrid-worker node ${process.version}` },
    onStatus: (s) => {
      if (s.connected !== last?.connected) say(s.connected ? `connected to ${o.server} as volunteer ${s.volunteerId}` : `not connected (${s.lastError ?? 'connecting'})`);
      if (s.tasksDone !== last?.tasksDone) say(`tasks done: ${s.tasksDone} (compute ${Math.round(s.computeMs)} ms)`);
      if (s.lastError && s.lastError !== last?.lastError) say(s.lastError);
      last = s;
    },
  });
  loop.start();
  await new Promise<void>((resolve) => {
    const stop = () => { loop.stop(); void runner.close().then(resolve); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

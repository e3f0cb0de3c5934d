/**
 * `tabgrid worker`: a headless volunteer on onnxruntime-node, speaking the same protocol as the page.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemTimers } from '../client/net/loop-timers.js';
import { type LoopStatus, WorkLoop } from '../client/net/work-loop.js';
import { AppError } from '../shared/errors.js';
import { safeText } from '../shared/safe-text.js';
import { NodeRunner } from './node-runner.js';
import { ThrottledLine } from './throttled-line.js';

/** Tasks and interactive requests can come hundreds a second: their counts are logged at most this often. */
const COUNT_LOG_MS = 5_000;

export interface WorkerOptions {
  /**
   * The server's URL, or several separated by commas: the worker starts on the first and, when the one it is on
   * cannot be reached, moves to the next in turn (client/net/connection-watch.ts says when).
   */
  server: string;
  slots?: number;
  /** The volunteer token itself. */
  token?: string;
  /** Where the token is kept between runs (default ~/.config/tabgrid/worker-token). */
  tokenFile?: string;
  /** A new identity for this run only, kept nowhere. */
  ephemeral?: boolean;
  /** The local address the connection leaves from (a machine with several interfaces or addresses). */
  bind?: string;
  /** onnxruntime's threads per run (NodeRunnerOptions.threads). */
  threads?: number;
}

/** The default place a headless volunteer keeps its identity, like a browser keeps it in localStorage. */
export function defaultTokenFile(): string {
  return path.join(process.env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config'), 'tabgrid', 'worker-token');
}

/** `--server A,B,...` as a list; surrounding spaces and empty entries are dropped. */
export function serverList(server: string): string[] {
  return server.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

export async function runWorker(o: WorkerOptions, say: (s: string) => void): Promise<void> {
  const [first, ...others] = serverList(o.server);
  if (!first) throw new AppError('INVALID_PAYLOAD', '--server: no server URL given');
  let server = first;
  const runner = new NodeRunner({ threads: o.threads });
  let last: LoopStatus | null = null;
  const tasksLine = new ThrottledLine(say, COUNT_LOG_MS, systemTimers);
  const interactiveLine = new ThrottledLine(say, COUNT_LOG_MS, systemTimers);
  const file = o.token || o.ephemeral ? null : (o.tokenFile ?? defaultTokenFile());
  const saved = file && fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : undefined;
  const loop = new WorkLoop({
    serverUrl: first, servers: others, slots: o.slots, token: o.token ?? saved, runner, bind: o.bind,
    onSwitch: (from, to) => {
      server = to;
      // A server learned from a hello's ack is a server's word: printed through safeText, like anything it says.
      say(`server ${safeText(from)} unreachable; trying ${safeText(to)}`);
    },
    onToken: (token) => {
      if (!file || token === saved) return;
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
    },
    hello: { kind: 'node', backends: ['cpu'], agent: `tabgrid-worker node ${process.version}` },
    onStatus: (s) => {
      if (s.connected !== last?.connected) say(s.connected ? `connected to ${safeText(server)} as volunteer ${s.volunteerId}` : `not connected (${s.lastError ?? 'connecting'})`);
      if (s.tasksDone !== last?.tasksDone) tasksLine.set(`tasks done: ${s.tasksDone} (compute ${Math.round(s.computeMs)} ms)`);
      if (s.lastError && s.lastError !== last?.lastError) say(s.lastError);
      if (s.interactiveWarm.join() !== last?.interactiveWarm.join()) {
        say(`interactive sessions warm: ${s.interactiveWarm.length ? s.interactiveWarm.map((h) => h.slice(0, 12)).join(', ') : 'none'}`);
      }
      if (last && (s.interactiveServed !== last.interactiveServed || s.interactiveFailed !== last.interactiveFailed)) {
        interactiveLine.set(`interactive requests served: ${s.interactiveServed}${s.interactiveFailed ? ` (${s.interactiveFailed} failed)` : ''}`);
      }
      last = s;
    },
  });
  // Ready to compute before the server counts this worker: the first task then waits for its model alone.
  await runner.warmUp(first).catch((err: unknown) => say(`warm-up failed: ${err instanceof Error ? err.message : String(err)}`));
  loop.start();
  await new Promise<void>((resolve) => {
    const stop = () => {
      loop.stop();
      tasksLine.flush();
      interactiveLine.flush();
      void runner.close().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

/**
 * Child processes for the benchmarks: each load generator and each server runs in its own process, so
 * the figures compare processes the way a deployment has them. Children are TypeScript run through tsx,
 * talk to the parent over an IPC channel, and are sampled through /proc (CPU ticks, RSS, peak RSS).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BENCH = path.join(ROOT, 'bench');

/** Clock ticks per second for /proc/<pid>/stat; 100 on every Linux this runs on. */
const HZ = 100;

export interface ChildOptions {
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Prefix for the child's stderr/stdout lines; null silences them. */
  label?: string | null;
}

/** A child running one of bench/'s TypeScript entry points, with an IPC channel. */
export class Child {
  readonly proc: ChildProcess;
  private readonly waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  private readonly lineWaiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  private readonly exited: Promise<number | null>;
  readonly stdout: string[] = [];

  constructor(entry: string, args: string[] = [], opts: ChildOptions = {}) {
    this.proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', entry, ...args], {
      cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const label = opts.label === undefined ? path.basename(entry, '.ts') : opts.label;
    const pipe = (stream: NodeJS.ReadableStream | null, keep: boolean) => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (keep) {
            this.stdout.push(line);
            for (const w of [...this.lineWaiters]) {
              const hit = w.re.exec(line);
              if (hit) { this.lineWaiters.splice(this.lineWaiters.indexOf(w), 1); w.resolve(hit); }
            }
          }
          if (label !== null && line.trim()) process.stderr.write(`  [${label}] ${line}\n`);
        }
      });
    };
    pipe(this.proc.stdout, true);
    pipe(this.proc.stderr, false);
    this.proc.on('message', (m: Msg) => {
      const i = this.waiters.findIndex((w) => w.match(m));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m);
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /** Waits for the next message of this type (rejects if the child exits first or after `timeoutMs`). */
  next<T extends Msg>(type: string, timeoutMs = 120_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for '${type}' from pid ${this.pid}`)), timeoutMs);
      const w = { match: (m: Msg) => m.type === type, resolve: (m: Msg) => { clearTimeout(timer); resolve(m as T); } };
      this.waiters.push(w);
      void this.exited.then((code) => {
        clearTimeout(timer);
        if (this.waiters.includes(w)) reject(new Error(`pid ${this.pid} exited (${code}) before sending '${type}'`));
      });
    });
  }

  /** Waits for a stdout line matching `re`. */
  line(re: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    const seen = this.stdout.map((l) => re.exec(l)).find(Boolean);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} from pid ${this.pid}`)), timeoutMs);
      this.lineWaiters.push({ re, resolve: (m) => { clearTimeout(timer); resolve(m); } });
      void this.exited.then((code) => { clearTimeout(timer); reject(new Error(`pid ${this.pid} exited (${code}) before printing ${re}`)); });
    });
  }

  send(m: Msg): void {
    this.proc.send(m);
  }

  /** Sends a request and waits for its reply (`type` + ':ok'). */
  async ask<T extends Msg>(m: Msg, timeoutMs?: number): Promise<T> {
    const reply = this.next<T>(`${m.type}:ok`, timeoutMs);
    this.send(m);
    const r = await reply;
    if (typeof r.error === 'string') throw new Error(`pid ${this.pid} failed '${m.type}': ${r.error}`);
    return r;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  async stop(graceMs = 15_000): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  wait(): Promise<number | null> {
    return this.exited;
  }
}

export interface Msg { type: string; [k: string]: unknown }

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / HZ;
}

/** Current and peak resident memory of a process, in bytes (VmRSS, VmHWM). */
export function memory(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** CPU seconds the whole machine has spent busy (all cores, every process). */
export function machineBusySeconds(): number {
  const [, ...f] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / HZ;
}

/** Takes CPU readings of several processes at one instant, to turn into shares over a window. */
export class CpuWindow {
  private readonly start: { t: number; cpu: number[]; machine: number };

  constructor(private readonly pids: number[]) {
    this.start = { t: performance.now(), cpu: pids.map(cpuSeconds), machine: machineBusySeconds() };
  }

  /** CPU seconds per wall second of each process since construction (1.0 = one core busy). */
  cores(): number[] {
    const wall = (performance.now() - this.start.t) / 1000;
    return this.pids.map((pid, i) => (cpuSeconds(pid) - this.start.cpu[i]) / wall);
  }

  /** Cores kept busy by everything else on the machine over the window (other users' work, the kernel). */
  others(): number {
    const wall = (performance.now() - this.start.t) / 1000;
    const ours = this.pids.reduce((n, pid, i) => n + cpuSeconds(pid) - this.start.cpu[i], 0);
    return Math.max(0, (machineBusySeconds() - this.start.machine - ours) / wall);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** IPC from the child's side: answers `type` requests with `type:ok` replies. */
export function serveParent(handlers: Record<string, (m: Msg) => unknown | Promise<unknown>>): void {
  if (!process.send) throw new Error('this entry point runs as a child of a bench/ command (it needs an IPC channel)');
  process.on('message', (m: Msg) => {
    const h = handlers[m.type];
    if (!h) return;
    void Promise.resolve(h(m)).then(
      (r) => process.send!({ type: `${m.type}:ok`, ...(r as object | undefined) }),
      (err: unknown) => process.send!({ type: `${m.type}:ok`, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

/** Sends an unsolicited message to the parent. */
export function tellParent(m: Msg): void {
  process.send?.(m);
}

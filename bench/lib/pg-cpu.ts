/**
 * The CPU a PostgreSQL cluster spends over a window, read from /proc: the postmaster and every process it forked
 * (the backends serving the servers' connections, and the background ones: checkpointer, WAL writer, autovacuum).
 * Only this cluster's processes count (children of its postmaster, /proc/<pid>/comm `postgres`): another
 * cluster on the machine (a test's) is someone else's load. Processes that appear during the window count in
 * full; those that exit during it are covered by the CPU the postmaster reaped from its children (cutime, cstime).
 */
import fs from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat; 100 on every Linux this runs on. */
const HZ = 100;

interface ProcStat { ppid: number; cpu: number; children: number }

/** ppid, own CPU seconds (utime + stime) and reaped children's (cutime + cstime); null when the process is gone. */
function procStat(pid: number): ProcStat | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": state is field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / HZ, children: (Number(f[13]) + Number(f[14])) / HZ };
  } catch {
    return null;
  }
}

function comm(pid: number): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** A backend serves a client connection: its title names the client's address, `postgres: user db 127.0.0.1(5123) idle`. */
function isBackend(pid: number): boolean {
  try {
    const title = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /\(\d+\)|\[local\]/.test(title);
  } catch {
    return false;
  }
}

interface Snapshot { t: number; postmaster: ProcStat; procs: Map<number, { cpu: number; backend: boolean }> }

/** CPU over a window, in cores (CPU seconds per wall second). */
export interface PgCpuWindow {
  seconds: number;
  /** Backends: the work done for the servers' queries and commits. */
  backendCores: number;
  /** The postmaster and background processes (WAL writer, checkpointer, autovacuum, ...). */
  backgroundCores: number;
  /** Processes that exited during the window (their CPU since the window began, from the postmaster's reaped total). */
  exitedCores: number;
  cores: number;
  /** Processes seen at the end of the window. */
  processes: number;
}

export class PgCpu {
  /**
   * `postmaster`: the cluster's postmaster pid (the parent of any of its backends: see `fromBackend`). `exclude`:
   * pids not to count, such as the bench's own monitoring connection.
   */
  constructor(private readonly postmaster: number, private readonly exclude: ReadonlySet<number> = new Set()) {
    if (comm(postmaster) !== 'postgres') throw new Error(`pid ${postmaster} is not a postgres process`);
  }

  /** The cluster of a backend (`SELECT pg_backend_pid()` on any connection); that backend is left out of the counts. */
  static fromBackend(backendPid: number): PgCpu {
    const s = procStat(backendPid);
    if (!s) throw new Error(`no process ${backendPid}: is the database on this machine?`);
    return new PgCpu(s.ppid, new Set([backendPid]));
  }

  /** Starts a window; its `end()` gives the cores used since. */
  window(): { end(): PgCpuWindow } {
    const start = this.snapshot();
    return { end: () => this.between(start, this.snapshot()) };
  }

  private snapshot(): Snapshot {
    const postmaster = procStat(this.postmaster);
    if (!postmaster) throw new Error(`the postmaster (pid ${this.postmaster}) is gone`);
    const procs = new Map<number, { cpu: number; backend: boolean }>([[this.postmaster, { cpu: postmaster.cpu, backend: false }]]);
    for (const name of fs.readdirSync('/proc')) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid === this.postmaster || this.exclude.has(pid)) continue;
      const s = procStat(pid);
      if (s?.ppid !== this.postmaster || comm(pid) !== 'postgres') continue;
      procs.set(pid, { cpu: s.cpu, backend: isBackend(pid) });
    }
    return { t: performance.now(), postmaster, procs };
  }

  private between(a: Snapshot, b: Snapshot): PgCpuWindow {
    const seconds = (b.t - a.t) / 1000;
    let backend = 0;
    let background = 0;
    for (const [pid, p] of b.procs) {
      const used = p.cpu - (a.procs.get(pid)?.cpu ?? 0);
      if (p.backend) backend += used;
      else background += used;
    }
    // Children reaped during the window: their whole lives are in the postmaster's cutime + cstime; what of it they
    // had used before the window began was in the first snapshot.
    let before = 0;
    for (const [pid, p] of a.procs) if (pid !== this.postmaster && !b.procs.has(pid)) before += p.cpu;
    const exited = Math.max(0, b.postmaster.children - a.postmaster.children - before);
    return {
      seconds, backendCores: backend / seconds, backgroundCores: background / seconds, exitedCores: exited / seconds,
      cores: (backend + background + exited) / seconds, processes: b.procs.size,
    };
  }
}

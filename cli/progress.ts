/**
 * The job progress bar: redrawn in place on a terminal, printed as occasional lines otherwise.
 */
import type { JobView } from '../shared/protocol.js';

const MAX_BAR = 30;
const MIN_BAR = 10;
/** What a TTY that does not report its width (some CI pseudo-terminals) is taken to have. */
const FALLBACK_COLUMNS = 80;

/**
 * One progress line for `job`, at most `columns - 1` characters: a line as wide as the terminal leaves the
 * cursor past the last column, and the next `\r` redraw then lands on a fresh row instead of over the old one.
 * On a narrow terminal the bar shrinks first, then details go (replicas issued, then running tasks, then the
 * word "tasks"), and the bar goes before what says whether the job is in trouble (failed tasks, status).
 */
export function renderProgress(job: JobView, columns: number): string {
  const budget = Math.max(1, columns - 1);
  const { total, done, failed, running } = job.tasks;
  const pct = total ? Math.floor((done / total) * 100) : 0;
  const tail = [...(failed ? [`${failed} failed`] : []), job.status];
  const levels = [
    [`${pct}% ${done}/${total} tasks`, `${running} running`, `${job.replicasIssued} replicas`, ...tail],
    [`${pct}% ${done}/${total} tasks`, `${running} running`, ...tail],
    [`${pct}% ${done}/${total} tasks`, ...tail],
    [`${pct}% ${done}/${total}`, ...tail],
  ].map((parts) => parts.join(' · '));
  for (const text of levels) {
    const width = Math.min(MAX_BAR, budget - text.length - 3);
    if (width >= MIN_BAR) {
      const filled = total ? Math.round((done / total) * width) : 0;
      return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`;
    }
  }
  const bare = levels.find((text) => text.length <= budget);
  if (bare !== undefined) return bare;
  const last = levels[levels.length - 1]!;
  return budget > 1 ? `${last.slice(0, budget - 1)}…` : last.slice(0, budget);
}

export class ProgressBar {
  private last = '';
  private lastPrinted = 0;
  private readonly tty: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(out.isTTY);
  }

  update(job: JobView): void {
    // The width is read on every redraw so that a resized terminal gets lines that fit it; lines written to a
    // file or a pipe have no width to fit.
    const line = renderProgress(job, this.tty ? this.out.columns || FALLBACK_COLUMNS : Infinity);
    if (this.tty) {
      this.out.write(`\r${line}\x1b[K`);
    } else if (line !== this.last && (Date.now() - this.lastPrinted > 2000 || job.status !== 'running')) {
      this.out.write(`${line}\n`);
      this.lastPrinted = Date.now();
    }
    this.last = line;
  }

  done(): void {
    if (this.tty && this.last) this.out.write('\n');
  }
}

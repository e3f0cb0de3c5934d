/**
 * The job progress bar: redrawn in place on a terminal, printed as occasional lines otherwise.
 */
import type { JobView } from '../shared/protocol.js';

export class ProgressBar {
  private last = '';
  private lastPrinted = 0;
  private readonly tty: boolean;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {
    this.tty = Boolean(out.isTTY);
  }

  update(job: JobView): void {
    const { total, done, failed, running } = job.tasks;
    const width = 30;
    const filled = total ? Math.round((done / total) * width) : 0;
    const pct = total ? Math.floor((done / total) * 100) : 0;
    const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct}% ${done}/${total} tasks` +
      ` · ${running} running · ${job.replicasIssued} replicas${failed ? ` · ${failed} failed` : ''} · ${job.status}`;
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

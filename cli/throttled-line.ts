/**
 * A line that changes often (a count the worker bumps with every task) said at most once per interval. A line per
 * task cost the headless worker more CPU than the task's own protocol (a write to stderr for each), and nobody
 * reads 500 lines a second.
 */
import type { LoopTimers } from '../client/net/loop-timers.js';

/**
 * The first change is said at once; later ones within `everyMs` of it are held, and the latest of them is said
 * when the interval ends, so the last value is always said (a job's final count, not the one before it).
 */
export class ThrottledLine {
  private saidAt = -Infinity;
  private held: string | null = null;
  private timer: unknown = null;

  constructor(private readonly say: (s: string) => void, private readonly everyMs: number, private readonly timers: Pick<LoopTimers, 'now' | 'setTimeout' | 'clearTimeout'>) {}

  /** The line's new text: said now, or at the end of the current interval. */
  set(line: string): void {
    const wait = this.saidAt + this.everyMs - this.timers.now();
    if (wait <= 0) { this.sayNow(line); return; }
    this.held = line;
    this.timer ??= this.timers.setTimeout(() => { this.timer = null; this.flush(); }, wait);
  }

  /** Says a held line now (on stopping), and holds no timer after. */
  flush(): void {
    if (this.timer !== null) { this.timers.clearTimeout(this.timer); this.timer = null; }
    if (this.held !== null) this.sayNow(this.held);
  }

  private sayNow(line: string): void {
    this.held = null;
    this.saidAt = this.timers.now();
    this.say(line);
  }
}

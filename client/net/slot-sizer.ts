/**
 * How many tasks a worker holds at once when it was not told (`--slots`): enough that the tasks in hand keep it busy
 * while a result's acknowledgement brings the next one. One task runs and s - 1 wait; a result asks for its successor,
 * which comes back one acknowledgement later, while the s - 1 take (s - 1) run times. So s = 1 + ack time / run time,
 * from 2 (tasks that take longer than their round trip, as most do) to ADAPTIVE_MAX_SLOTS (tiny tasks, a busy server).
 * The server's lease cap still bounds what it gets: a newcomer holds 2 whatever it asks.
 */

/** The most tasks an unconfigured worker holds at once. */
export const ADAPTIVE_MAX_SLOTS = 8;
/** Weight of the newest observation in the moving averages. */
const WEIGHT = 0.2;

export class SlotSizer {
  private runMs: number | null = null;
  private ackMs: number | null = null;

  /** One task's time in the runner, and its result's time from sending to its acknowledgement. */
  observe(runMs: number, ackMs: number): void {
    this.runMs = this.runMs === null ? runMs : this.runMs + WEIGHT * (runMs - this.runMs);
    this.ackMs = this.ackMs === null ? ackMs : this.ackMs + WEIGHT * (ackMs - this.ackMs);
  }

  get slots(): number {
    if (this.runMs === null || this.ackMs === null) return 2;
    const wanted = 1 + Math.ceil(this.ackMs / Math.max(this.runMs, 0.01));
    return Math.max(2, Math.min(ADAPTIVE_MAX_SLOTS, wanted));
  }
}

/**
 * Results on their way to the server. At most `slots` wait for their acknowledgement at once, so a slow server slows
 * the worker down instead of results piling up; a result the server refused as over its event rate is sent again
 * shortly (it still stands there, and its lease is still ours); one whose connection went before it left is dropped.
 */
import type { AckResponse, ResultAccepted, TaskResult } from '../../shared/protocol.js';
import type { LoopTimers } from './loop-timers.js';
import type { RunOutcome } from './work-loop-options.js';

/** An event the server refused as over its rate (tiny tasks, many slots) is sent again after this long. */
export const RATE_RETRY_MS = 1_000;

export type ResultAck = AckResponse<ResultAccepted>;

export class ResultOutbox {
  /** Results sent and not yet acknowledged, each with what settles its wait. */
  private readonly unacked = new Map<Promise<void>, () => void>();

  constructor(private readonly timers: LoopTimers, private readonly slots: () => number) {}

  /** Resolves once fewer than `slots` results wait for their acknowledgement. */
  async room(): Promise<void> {
    while (this.unacked.size >= this.slots()) await Promise.race(this.unacked.keys());
  }

  /**
   * Sends `result` in a moment rather than now (a page's runner takes up the next task first: sending a large result
   * holds its main thread a while) through `emit`, unless `gone()` says by then that its connection is; `acked` gets
   * the server's answer, and the time it took from the (last) sending.
   */
  post(result: TaskResult, emit: (result: TaskResult, ack: (res: ResultAck) => void) => void, gone: () => boolean, acked: (res: ResultAck, ackMs: number) => void): void {
    let settle!: () => void;
    const waiting = new Promise<void>((r) => { settle = r; });
    this.unacked.set(waiting, settle);
    const done = () => { this.unacked.delete(waiting); settle(); };
    const send = () => {
      if (gone()) { done(); return; }
      const sentAt = this.timers.now();
      emit(result, (res) => {
        if (!res.ok && res.error.code === 'RATE_LIMITED') { this.timers.setTimeout(send, RATE_RETRY_MS); return; }
        done();
        acked(res, this.timers.now() - sentAt);
      });
    };
    this.timers.later(send);
  }

  /** The connection went: no acknowledgement will come for what waits. */
  clear(): void {
    for (const settle of this.unacked.values()) settle();
    this.unacked.clear();
  }
}

/** The `task:result` message for a run's outcome; `next` asks for that many tasks on its acknowledgement. */
export function resultMessage(replicaId: string, outcome: RunOutcome, next: number): TaskResult {
  return {
    replicaId, backend: outcome.backend, runMs: outcome.runMs,
    outputs: outcome.outputs.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, data: t.data })),
    ...(next > 0 ? { next } : {}),
  };
}

/**
 * Group commit for socket events: the handlers of the events that arrive in one turn of the event loop run
 * in one store transaction, each in a savepoint of its own, so one that throws changes nothing and is
 * answered with its error while the others commit. The acks, and whatever was meant to be sent meanwhile (tasks pushed to
 * workers, leases withdrawn), go out only after the commit: a worker never hears of a state the store
 * could still lose. One commit per turn instead of one per event is what makes a busy server cheap. On an engine
 * that commits without waiting (Store.transactionThen), the turn's commit is sent and the next events are read while
 * it runs; the acks go out when it is durable, and if it fails they are errors and nothing of the turn stands.
 * With an observer, each turn's commit time and each event's time from arrival to reply are reported (the
 * metrics' commit and dispatch latencies); they are wall-clock measurements, not scheduling, so not the Clock's.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AppError } from '../../shared/errors.js';
import type { EventSink, TickEventMap } from '../events.js';
import { commitThen, type Store } from '../store/store.js';
import { toWireError } from './wire-error.js';

type Reply = (response: unknown) => void;

/** A handler's answer that is an error while what it wrote stands (e.g. an invalid result, recorded as such). */
export class Refusal {
  constructor(readonly error: AppError) {}
}

interface Pending { event: string; run: () => object; reply: Reply; at: number }

export class TickBatch {
  private queue: Pending[] = [];
  private scheduled = false;
  private flushing = false;
  private sends: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly observer?: EventSink<TickEventMap>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Runs `run` with the others of this turn; `reply` gets `{ ok: true, ...result }` or `{ ok: false, error }` after the commit. */
  add(event: string, run: () => object, reply: Reply): void {
    this.queue.push({ event, run, reply, at: this.observer ? this.now() : 0 });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Runs `run` with this turn's events, as the server's own answers do (scheduler/server-answers.ts: Turn). */
  join(event: string, run: () => void, landed: (err: Error | null) => void): void {
    this.add(event, () => { run(); return {}; }, (res) => {
      const r = res as { ok: boolean; error?: { message: string } };
      landed(r.ok ? null : new Error(r.error?.message ?? 'the commit failed'));
    });
  }

  /** Sends now when no batch is being handled, else once it has committed (dropped if it did not). */
  afterCommit(send: () => void): void {
    if (this.flushing) this.sends.push(send);
    else send();
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    const replies: [Reply, unknown][] = [];
    let sends: (() => void)[] = [];
    this.flushing = true;
    const started = this.observer ? this.now() : 0;
    try {
      commitThen(this.store, () => {
        for (const p of batch) {
          try {
            const out = this.store.transaction(p.run);
            replies.push([p.reply, out instanceof Refusal ? { ok: false, error: toWireError(out.error, this.log) } : { ok: true, ...out }]);
          } catch (err) {
            const wire = toWireError(err, this.log);
            this.log.debug({ event: p.event, code: wire.code, message: wire.message }, 'socket event refused');
            replies.push([p.reply, { ok: false, error: wire }]);
          }
        }
        // What was meant to be sent in this turn goes with its commit.
        sends = this.sends;
        this.sends = [];
        this.flushing = false;
      }, (err) => this.landed(batch, replies, sends, started, err));
    } catch (err) {
      // The commit could not be sent (store closed): nothing of this batch happened.
      this.landed(batch, replies, [], started, err);
    } finally {
      this.flushing = false;
      this.sends = [];
    }
  }

  /** The turn's commit is durable (`err` null) or failed: its acks, and what it meant to send, go out or become errors. */
  private landed(batch: Pending[], replies: [Reply, unknown][], sends: (() => void)[], started: number, err: unknown): void {
    const committed = !err;
    if (err) {
      const wire = toWireError(err, this.log);
      replies.length = 0;
      for (const p of batch) replies.push([p.reply, { ok: false, error: wire }]);
    } else {
      for (const send of sends) send();
    }
    if (!this.observer) {
      for (const [reply, response] of replies) reply(response);
      return;
    }
    this.observer.emit('tick:committed', batch.length, this.now() - started, committed);
    for (let i = 0; i < replies.length; i++) {
      const [reply, response] = replies[i]!;
      reply(response);
      this.observer.emit('socket:answered', batch[i]!.event, this.now() - batch[i]!.at);
    }
  }
}

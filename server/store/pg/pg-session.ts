/**
 * The PostgreSQL connection as the store uses it: a round trip costs about 250 µs, so inside a transaction writes
 * are queued and go out with the next read (read-your-writes) or with the COMMIT, BEGIN with the first of these.
 * A transaction that only writes is one round trip. Nested transactions and savepoints are SAVEPOINT statements
 * queued in order; one released or rolled back before it went out never reaches the server (no subtransaction:
 * PostgreSQL slows every snapshot once a transaction has more than 64 of them).
 *
 * `transactionThen` sends its commit without waiting for it; the next transaction begins only once it is known to
 * have committed (or failed), so transactions still follow one another, and reads in between see what it wrote.
 */
import { coalesce } from './pg-coalesce.js';
import { PgError, type PgSync, type Posted, type Statement } from './pg-sync.js';
import type { Savepoint } from '../store.js';

interface OpenSavepoint {
  name: string;
  /** Its SAVEPOINT statement's place in the queue while it waits there; null once it went out. */
  queued: number | null;
  /** It went out in a call that failed before reaching it: it does not exist on the server. */
  lost: boolean;
}

/**
 * The first `writes` statements with the INSERTs and UPDATEs of one text merged (none moves past a SAVEPOINT), and how
 * they go as texts: one from each SAVEPOINT to the next (a failure in a text does not say where, and a savepoint made
 * before it must be known to exist; the one a text begins with is).
 */
function joinable(listed: Statement[], writes: number): { statements: Statement[]; stretches: number[] } {
  const { statements, upTo } = coalesce(listed, writes);
  const stretches: number[] = [];
  for (let i = 1, start = 0; i <= upTo; i++) {
    if (i < upTo && !statements[i]!.text.startsWith('SAVEPOINT ')) continue;
    stretches.push(i - start);
    start = i;
  }
  return { statements, stretches };
}

export class PgSession {
  private depth = 0;
  private queue: Statement[] = [];
  /** BEGIN went out in this transaction. */
  private begun = false;
  /** The connection BEGIN went out on: the rest of the transaction must run there. */
  private conn: number | undefined;
  /** The fence ran in this transaction (it runs once, before its first write). */
  private fenced = false;
  /** Writes are queued that the fence has not covered yet. */
  private dirty = false;
  /** Set when the transaction can no longer commit (a failure no savepoint undid): commit throws it. */
  private failed: unknown = null;
  private savepoints: OpenSavepoint[] = [];
  private names = 0;
  /** Called once the outermost transaction has rolled back (callers drop what they cached inside it). */
  onRollback: () => void = () => {};

  /** `fence`: a server id whose writes must each pass `tabgrid_fence` (it throws once the server is declared dead). */
  constructor(readonly db: PgSync, private readonly fence?: string) {}

  get inTransaction(): boolean {
    return this.depth > 0;
  }

  /** Runs `fn` as one unit: outermost, a transaction; nested, a savepoint undone alone when `fn` throws. */
  transaction<T>(fn: () => T): T {
    if (this.depth > 0) {
      const sp = this.savepoint();
      let out: T;
      try {
        out = fn();
      } catch (err) {
        sp.rollback();
        throw err;
      }
      sp.release();
      return out;
    }
    return this.outermost(fn, () => this.commit());
  }

  /**
   * Runs `fn` as a transaction whose commit is sent without waiting for it: `done` is told once it committed (null)
   * or failed, on a later turn or at the next `settle`. Throws, and never tells `done`, when `fn` throws or the commit
   * could not be sent. A transaction of its own: not inside another.
   */
  transactionThen<T>(fn: () => T, done: Posted): T {
    if (this.depth > 0) throw new Error('transactionThen is a transaction of its own: call it outside one');
    return this.outermost(fn, () => this.commitLater(done));
  }

  /** An outermost transaction, begun once the one before it is known, ended by `end` (a commit) or rolled back. */
  private outermost<T>(fn: () => T, end: () => void): T {
    this.settle();
    this.depth = 1;
    try {
      const out = fn();
      end();
      return out;
    } catch (err) {
      this.abort();
      throw err;
    } finally {
      this.reset();
    }
  }

  /** Waits for a commit sent without waiting, and tells its outcome. */
  settle(): void {
    // Also when none is in flight: an answer met while waiting for another call may not have been told yet.
    this.db.settle();
  }

  savepoint(): Savepoint {
    if (this.depth === 0) {
      // Outside a transaction a savepoint opens one (as in SQLite) that its release commits.
      this.depth = 1;
      let done = false;
      const end = (keep: boolean) => {
        if (done) return;
        done = true;
        try {
          if (keep) this.commit(); else this.abort();
        } catch (err) {
          this.abort();
          throw err;
        } finally {
          this.reset();
        }
      };
      return { release: () => end(true), rollback: () => end(false) };
    }
    const sp: OpenSavepoint = { name: `sp_${++this.names}`, queued: this.queue.length, lost: false };
    this.queue.push({ text: `SAVEPOINT ${sp.name}` });
    this.savepoints.push(sp);
    let done = false;
    return {
      release: () => {
        if (done) return;
        done = true;
        this.close(sp, false);
      },
      rollback: () => {
        if (done) return;
        done = true;
        this.close(sp, true);
      },
    };
  }

  /** Sends `statements` now, after what is queued, and returns their rows. For reads, and writes that return a value. */
  read(statements: Statement[], write = false): Record<string, unknown>[][] {
    if (this.depth === 0) return write ? this.autocommit(statements) : this.db.run(statements);
    if (this.failed) throw this.failed;
    const rows = this.send([...this.queue], statements, write);
    return rows.slice(rows.length - statements.length);
  }

  /** A write that returns nothing: queued inside a transaction, sent at once (and committed) outside one. */
  write(statements: Statement[]): void {
    if (this.depth === 0) {
      this.autocommit(statements);
      return;
    }
    this.queue.push(...statements);
    this.dirty = true;
  }

  /** Sends the queued statements then `extra` in one call, opening the transaction and fencing as needed. */
  private send(queued: Statement[], extra: Statement[], write: boolean, inline = false): Record<string, unknown>[][] {
    const head: Statement[] = [];
    if (!this.begun) head.push({ text: 'BEGIN' });
    const fencing = this.fence !== undefined && !this.fenced && (this.dirty || write);
    if (fencing) head.push({ text: 'SELECT tabgrid_fence($1)', values: [this.fence] });
    this.queue = [];
    this.begun = true;
    this.dirty = false;
    const sent = this.savepoints.filter((sp) => sp.queued !== null);
    const listed = [...head, ...queued, ...extra];
    // Writes need no rows back: they go as texts (a round trip to the database each), the reads after them as they are.
    const { statements: all, stretches } = joinable(listed, head.length + queued.length + (inline ? extra.length : 0));
    // Each SAVEPOINT statement passes through the merging as it is: where it stands now.
    const positions = sent.map((sp) => all.indexOf(listed[head.length + sp.queued!]!));
    for (const sp of sent) sp.queued = null;
    try {
      const rows = this.db.run(all, this.conn, stretches).slice(head.length);
      this.conn ??= this.db.connection;
      this.fenced ||= fencing;
      return rows;
    } catch (err) {
      // Savepoints at or after the failed statement were never made: rolling back to one cannot save the transaction.
      const at = err instanceof PgError ? err.index : 0;
      sent.forEach((sp, k) => { if (positions[k]! >= at) sp.lost = true; });
      if (this.savepoints.every((sp) => sp.lost)) this.failed = err;
      throw err;
    }
  }

  private close(sp: OpenSavepoint, rollback: boolean): void {
    const i = this.savepoints.indexOf(sp);
    if (i < 0) return; // closed already, with a savepoint opened before it
    // Savepoints opened after it close with it, as SQL's do.
    this.savepoints.length = i;
    if (sp.queued !== null) {
      // Still in the queue: rolling back drops what was queued after it; releasing leaves that to the parent.
      if (rollback) this.queue.length = sp.queued;
      else this.queue.splice(sp.queued, 1);
      return;
    }
    if (sp.lost) {
      if (rollback) this.failed ??= new Error(`savepoint ${sp.name} was lost to a failed statement: the transaction cannot commit`);
      return;
    }
    if (rollback) {
      this.queue.push({ text: `ROLLBACK TO SAVEPOINT ${sp.name}` });
      // What it undoes may have failed (the transaction is usable again), and may have been the fence: fence again.
      this.failed = null;
      this.fenced = false;
    }
    this.queue.push({ text: `RELEASE SAVEPOINT ${sp.name}` });
  }

  private reset(): void {
    this.depth = 0;
    this.queue = [];
    this.savepoints = [];
    this.begun = this.fenced = this.dirty = false;
    this.conn = undefined;
    this.failed = null;
  }

  private commit(): void {
    if (this.failed) throw this.failed;
    if (!this.begun) {
      if (this.queue.length === 0) return;
      // Nothing went out yet: a lone statement with no fence needs no BEGIN and COMMIT around it.
      if (!this.fence && this.queue.length === 1) {
        const only = this.queue;
        this.queue = [];
        this.db.run(only);
        return;
      }
    }
    // The commit's writes need no rows back: one text, one round trip to the database however many they are.
    this.send([...this.queue], [{ text: 'COMMIT' }], false, true);
    this.begun = false;
  }

  /** Sends the queued writes and COMMIT as one text, not waiting: `done` is told the outcome. */
  private commitLater(done: Posted): void {
    if (this.failed) throw this.failed;
    if (!this.begun && this.queue.length === 0) {
      // Nothing to write: told on a later turn, as a commit sent would be.
      setImmediate(() => done(null));
      return;
    }
    const head: Statement[] = this.begun ? [] : [{ text: 'BEGIN' }];
    if (this.fence !== undefined && !this.fenced && this.dirty) head.push({ text: 'SELECT tabgrid_fence($1)', values: [this.fence] });
    const listed = [...head, ...this.queue, { text: 'COMMIT' }];
    const { statements: all, stretches } = joinable(listed, listed.length);
    this.db.post(all, done, this.conn, stretches);
    this.queue = [];
    this.begun = false;
  }

  private abort(): void {
    this.queue = [];
    if (this.begun) {
      this.begun = false;
      try {
        this.db.run([{ text: 'ROLLBACK' }], this.conn);
      } catch { /* the connection is gone, and the transaction with it */ }
    }
    this.onRollback();
  }

  /** Statements outside a transaction: one alone as it is, several (or any under a fence) in a transaction of their own. */
  private autocommit(statements: Statement[]): Record<string, unknown>[][] {
    if (!this.fence && statements.length === 1) return this.db.run(statements);
    const head: Statement[] = [{ text: 'BEGIN' }];
    if (this.fence) head.push({ text: 'SELECT tabgrid_fence($1)', values: [this.fence] });
    try {
      return this.db.run([...head, ...statements, { text: 'COMMIT' }]).slice(head.length, head.length + statements.length);
    } catch (err) {
      try {
        this.db.run([{ text: 'ROLLBACK' }]);
      } catch { /* the connection is gone, and the transaction with it */ }
      throw err;
    }
  }
}

/**
 * Units of work over memory and a store, with the store's writes deferred to the end of the transaction.
 *
 * The working state lives in memory; a unit (a scheduler step, a socket event) changes it and notes how to undo
 * each change. The rows it changed are marked dirty and written once, when the outermost transaction ends (the
 * per-turn group commit), with the writes it queued (outputs, results). So a unit that throws is undone in
 * memory alone: no savepoint, no statement. Only when a unit must reach the store itself (a read the memory
 * cannot answer, a write that cannot wait) does it open savepoints, for itself and the units around it, and
 * write what is pending under them; if it then throws, the store rolls back to its savepoint and the rows
 * written there are marked dirty again (memory, undone, holds what they must be) with the writes of the units
 * around it queued again.
 *
 * A transaction may also be committed without waiting (`runThen`, on an engine with Store.transactionThen): its
 * changes to memory stand at once, and are undone should its commit fail. Every transaction, and every write outside
 * one, first waits for that outcome (`settle`), so the one in flight is always the last one made.
 */
import { commitThen, type Savepoint, type Store } from '../store/store.js';

interface Op { depth: number; run: () => void }

interface Frame {
  depth: number;
  /** Undo entries before this unit began. */
  mark: number;
  savepoint: Savepoint | null;
  /** Rows and queued writes written under this unit's savepoint (to redo should it be rolled back). */
  wroteRows: Set<string>;
  wroteOps: Op[];
}

export interface UnitLogDeps {
  store: Store;
  /** Writes a dirty row (`kind:id`) as memory holds it now. */
  writeRow(key: string): void;
  /** Called after the outermost transaction committed. */
  committed(): void;
  /** Called after the outermost transaction rolled back (memory already undone). */
  abandoned(): void;
}

export class UnitLog {
  private depth = 0;
  private undo: (() => void)[] = [];
  private readonly dirty = new Set<string>();
  private ops: Op[] = [];
  private readonly frames: Frame[] = [];

  constructor(private readonly deps: UnitLogDeps) {}

  get inTransaction(): boolean {
    return this.depth > 0;
  }

  /** Records how to undo a change just made (only inside a transaction: outside, nothing is undone). */
  noteUndo(fn: () => void): void {
    if (this.depth > 0) this.undo.push(fn);
  }

  /** A row to write at the end (`kind:id`); outside a transaction it is written at once. */
  touch(key: string): void {
    this.dirty.add(key);
    if (this.depth > 0) return;
    // Dirty before the commit in flight lands: what lands lets nothing go from memory that is still to be written.
    this.settle();
    this.flush();
  }

  /** Whether a row is still to be written (any row, without a key). */
  isDirty(key?: string): boolean {
    return key === undefined ? this.dirty.size > 0 : this.dirty.has(key);
  }

  /** A write to make at the end, in order with the others. */
  defer(run: () => void): void {
    if (this.depth === 0) { this.settle(); run(); return; }
    this.ops.push({ depth: this.depth, run });
  }

  /** Writes to the store now, after what is pending (a write that cannot wait: it is undone with its unit). */
  write<T>(fn: () => T): T {
    if (this.depth === 0) this.settle();
    this.flush(true);
    return fn();
  }

  /** Waits for the outcome of a commit in flight (a transaction or a write outside one must come after it). */
  settle(): void {
    this.deps.store.settle?.();
  }

  /** Makes the store current now (before a read of it). */
  flush(force = false): void {
    if (!force && this.dirty.size === 0 && this.ops.length === 0) return;
    const frame = this.frames[this.frames.length - 1];
    if (frame) for (const f of this.frames) f.savepoint ??= this.deps.store.savepoint();
    const rows = [...this.dirty];
    this.dirty.clear();
    const ops = this.ops;
    this.ops = [];
    for (const key of rows) this.deps.writeRow(key);
    for (const op of ops) op.run();
    if (frame) {
      for (const key of rows) frame.wroteRows.add(key);
      frame.wroteOps.push(...ops);
    }
  }

  /** Runs `fn` as a unit: all of it stands, or none of it (memory and store alike). */
  run<T>(fn: () => T): T {
    if (this.depth === 0) return this.outermost(fn);
    const frame: Frame = { depth: this.depth + 1, mark: this.undo.length, savepoint: null, wroteRows: new Set(), wroteOps: [] };
    this.frames.push(frame);
    this.depth++;
    try {
      const out = fn();
      this.frames.pop();
      this.depth--;
      // What this unit queued and wrote is its parent's now.
      for (const op of this.ops) if (op.depth > this.depth) op.depth = this.depth;
      if (frame.savepoint) {
        frame.savepoint.release();
        const parent = this.frames[this.frames.length - 1];
        if (parent) {
          for (const k of frame.wroteRows) parent.wroteRows.add(k);
          parent.wroteOps.push(...frame.wroteOps);
        }
      }
      return out;
    } catch (err) {
      this.frames.pop();
      this.depth--;
      for (let i = this.undo.length - 1; i >= frame.mark; i--) this.undo[i]!();
      this.undo.length = frame.mark;
      this.ops = this.ops.filter((op) => op.depth <= this.depth);
      if (frame.savepoint) {
        frame.savepoint.rollback();
        for (const k of frame.wroteRows) this.dirty.add(k);
        this.ops = [...frame.wroteOps.filter((op) => op.depth <= this.depth), ...this.ops];
      }
      throw err;
    }
  }

  /**
   * Runs `fn` as the outermost unit of a transaction whose commit is not waited for: `done` is told once it is durable
   * (memory's changes then stand) or failed (they are undone first). Throws, with memory undone and `done` never told,
   * when `fn` throws or the commit cannot be sent.
   */
  runThen<T>(fn: () => T, done: (err: Error | null) => void): T {
    if (this.depth > 0) throw new Error('runThen is a transaction of its own: call it outside one');
    this.settle();
    this.depth = 1;
    let posted = false;
    let early: { err: Error | null } | null = null;
    let undo: (() => void)[] = [];
    let out: T;
    try {
      out = commitThen(this.deps.store, () => {
        const r = fn();
        this.flush();
        return r;
      }, (err) => {
        if (posted) this.landed(undo, err, done);
        else early = { err };
      });
    } catch (err) {
      this.rolledBack();
      throw err;
    }
    undo = this.undo;
    this.undo = [];
    this.depth = 0;
    posted = true;
    const told = early as { err: Error | null } | null;
    if (told) this.landed(undo, told.err, done);
    return out;
  }

  /** A commit not waited for is known now: its changes stand, or are undone. */
  private landed(undo: (() => void)[], err: Error | null, done: (err: Error | null) => void): void {
    if (err) {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
      this.deps.abandoned();
    } else {
      this.deps.committed();
    }
    done(err);
  }

  private rolledBack(): void {
    for (let i = this.undo.length - 1; i >= 0; i--) this.undo[i]!();
    this.undo = [];
    this.dirty.clear();
    this.ops = [];
    this.depth = 0;
    this.deps.abandoned();
  }

  private outermost<T>(fn: () => T): T {
    this.settle();
    this.depth = 1;
    try {
      const out = this.deps.store.transaction(() => {
        const r = fn();
        this.flush();
        return r;
      });
      this.undo = [];
      this.depth = 0;
      this.deps.committed();
      return out;
    } catch (err) {
      this.rolledBack();
      throw err;
    }
  }
}

/**
 * Known-answer tasks' answers, kept once known: every probe a newcomer returns is judged against one, and on a
 * networked store each read would be a round trip inside the turn. An answer is kept when the transaction that set it
 * commits (the server computes them as a job starts), or once read. Bounded by bytes: the oldest go first.
 */
const LIMIT_BYTES = 64 * 2 ** 20;

export class SettledResults {
  private readonly kept = new Map<string, Uint8Array>();
  /** Set in the current transaction: kept when it commits. */
  private readonly staged = new Map<string, Uint8Array | undefined>();
  private bytes = 0;

  constructor(private readonly limitBytes = LIMIT_BYTES) {}

  get(taskId: string): Uint8Array | undefined {
    return this.kept.get(taskId);
  }

  /** Keeps a settled task's result (read from the store, or set by a committed transaction). */
  keep(taskId: string, result: Uint8Array): void {
    this.forget(taskId);
    this.kept.set(taskId, result);
    this.bytes += result.byteLength;
    for (const [id, r] of this.kept) {
      if (this.bytes <= this.limitBytes) break;
      this.kept.delete(id);
      this.bytes -= r.byteLength;
    }
  }

  /** A task's result changes in this transaction (`undefined`: cleared, or not known here): kept once it commits. */
  stage(taskId: string, result: Uint8Array | undefined): void {
    this.forget(taskId);
    this.staged.set(taskId, result);
  }

  /** Whether a result is staged for this task in the current transaction, and which. */
  staging(taskId: string): { result: Uint8Array | undefined } | undefined {
    return this.staged.has(taskId) ? { result: this.staged.get(taskId) } : undefined;
  }

  /** Undoes a staging (its unit threw): `prev` is what `staging` said before it. */
  unstage(taskId: string, prev: { result: Uint8Array | undefined } | undefined): void {
    if (prev) this.staged.set(taskId, prev.result);
    else this.staged.delete(taskId);
  }

  committed(): void {
    for (const [id, result] of this.staged) if (result) this.keep(id, result);
    this.staged.clear();
  }

  abandoned(): void {
    this.staged.clear();
  }

  forget(taskId: string): void {
    const r = this.kept.get(taskId);
    if (!r) return;
    this.kept.delete(taskId);
    this.bytes -= r.byteLength;
  }

  /** Forgets every result of a job (deleted, or its work now another server's). Task ids begin with the job's. */
  forgetJob(jobId: string): void {
    const prefix = `${jobId}-`;
    for (const id of [...this.kept.keys()]) if (id.startsWith(prefix)) this.forget(id);
  }
}

/**
 * A write-through cache of rows by id, for the rows the scheduler reads on every event (jobs, tasks,
 * replicas, volunteers). Rows are frozen and replaced on each write, never changed in place, so a caller
 * holding an older row keeps what it read. The owner clears it when a transaction rolls back, and it clears
 * itself when it grows past its limit (the store stays the truth; a miss only costs a read).
 */
export class RowCache<T extends object> {
  private readonly rows = new Map<string, Readonly<T>>();

  constructor(private readonly limit: number) {}

  /** The cached row, or the one `load` finds (then cached); undefined when there is none. */
  read<R>(id: string, load: () => R | undefined, toRow: (r: R) => T): Readonly<T> | undefined {
    const cached = this.rows.get(id);
    if (cached) return cached;
    const r = load();
    return r === undefined ? undefined : this.set(id, toRow(r));
  }

  set(id: string, row: T): Readonly<T> {
    if (this.rows.size >= this.limit && !this.rows.has(id)) this.rows.clear();
    const frozen = Object.freeze(row);
    this.rows.set(id, frozen);
    return frozen;
  }

  /** Applies a patch to a cached row; a row not cached stays uncached. */
  patch(id: string, patch: Partial<T>): void {
    const row = this.rows.get(id);
    if (!row) return;
    const next = { ...row } as T;
    for (const [k, v] of Object.entries(patch)) if (v !== undefined) (next as Record<string, unknown>)[k] = v;
    this.rows.set(id, Object.freeze(next));
  }

  delete(id: string): void {
    this.rows.delete(id);
  }

  clear(): void {
    this.rows.clear();
  }
}

/**
 * Volunteers' records in memory: those being used are kept, changed in memory (undone with their unit) and written
 * back at the end of the turn as differences from what was read, since another server of the same database may count
 * for the same volunteer. Rankings are the store's.
 */
import type { Store, VolunteerCounts, VolunteerPatch, VolunteerRow } from '../store/store.js';
import { patched } from './live-tasks.js';
import type { UnitLog } from './unit-log.js';

/** Records kept in memory before the ones not being written are let go. */
const LIMIT = 100_000;

const COUNTERS = ['valid', 'invalid', 'errors', 'canaryPassed', 'canaryFailed', 'credit'] as const;

export class LiveVolunteers {
  private readonly rows = new Map<string, VolunteerRow>();
  /** Each record as the store last had it: what is written is the difference. */
  private readonly base = new Map<string, VolunteerRow>();

  constructor(private readonly inner: Store, private readonly log: UnitLog) {}

  get(id: string): VolunteerRow | undefined {
    let v = this.rows.get(id);
    if (!v) {
      v = this.inner.getVolunteer(id);
      if (v) { this.rows.set(id, v); this.base.set(id, v); }
    }
    return v;
  }

  /** Reads a record again from the store (what other servers counted); call with nothing of it pending. */
  refresh(id: string): VolunteerRow | undefined {
    this.rows.delete(id);
    this.base.delete(id);
    return this.get(id);
  }

  update(id: string, patch: VolunteerPatch, counts: VolunteerCounts = {}): void {
    const prev = this.get(id);
    if (!prev) return;
    const next = patched(prev, patch);
    for (const k of COUNTERS) if (counts[k]) next[k] += counts[k]!;
    this.rows.set(id, next);
    this.log.noteUndo(() => this.rows.set(id, prev));
    this.log.touch(`v:${id}`);
  }

  /** Writes a changed record: counters as deltas from what was read, the rest as values. */
  write(id: string): void {
    const v = this.rows.get(id);
    const base = this.base.get(id);
    if (!v || !base) return;
    const counts: VolunteerCounts = {};
    for (const k of COUNTERS) if (v[k] !== base[k]) counts[k] = v[k] - base[k];
    const patch: VolunteerPatch = {};
    for (const k of ['name', 'team', 'streak', 'quarantinedAt'] as const) if (v[k] !== base[k]) (patch as Record<string, unknown>)[k] = v[k];
    this.inner.addToVolunteer(id, counts, patch);
    this.base.set(id, v);
    this.log.noteUndo(() => this.base.set(id, base));
  }

  /** After a commit: past the limit, the records are let go (they are read again when used). */
  trim(): void {
    if (this.rows.size > LIMIT) { this.rows.clear(); this.base.clear(); }
  }
}

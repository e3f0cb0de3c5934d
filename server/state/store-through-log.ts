/**
 * The part of the live state's Store that is the store's own, reached through the unit log: API keys, models,
 * data sets, rankings, sites, class agreement and retention. Reads first write what is pending (so they see what
 * the scheduler sees); writes go in the current unit (undone with it) or are deferred to its end.
 */
import type {
  ApiKeyRow, ClassPairRow, DatasetRow, JobBytes, ModelRow, RemovedBlobs, Savepoint, SiteRow, Store, TeamRow, VolunteerRow,
} from '../store/store.js';
import { UnitLog } from './unit-log.js';

export abstract class StoreThroughLog {
  protected readonly log: UnitLog;
  /** Each key's fair-share weight, read once and dropped when a key changes. */
  protected weights: Map<string, number> | null = null;

  constructor(protected readonly inner: Store) {
    this.log = new UnitLog({ store: inner, writeRow: (key) => this.writeRow(key), committed: () => this.committed(), abandoned: () => this.abandoned() });
  }

  /** Writes one changed row as memory holds it. */
  protected abstract writeRow(key: string): void;
  /** After the outermost transaction committed. */
  protected abstract committed(): void;
  /** After the outermost transaction rolled back. */
  protected abstract abandoned(): void;

  protected flush(): void {
    this.log.flush();
  }

  transaction<T>(fn: () => T): T {
    return this.log.run(fn);
  }

  transactionThen<T>(fn: () => T, done: (err: Error | null) => void): T {
    return this.log.runThen(fn, done);
  }

  settle(): void {
    this.log.settle();
  }

  savepoint(): Savepoint {
    return this.inner.savepoint();
  }

  // API keys, models and data sets.

  insertApiKey(row: ApiKeyRow): void { this.log.write(() => this.inner.insertApiKey(row)); this.weights = null; }
  findApiKey(keyHash: string): ApiKeyRow | undefined { return this.inner.findApiKey(keyHash); }
  listApiKeys(): ApiKeyRow[] { return this.inner.listApiKeys(); }
  setApiKeyWeight(id: string, weight: number): boolean { this.weights = null; return this.log.write(() => this.inner.setApiKeyWeight(id, weight)); }
  revokeApiKey(id: string, at: number): boolean { return this.log.write(() => this.inner.revokeApiKey(id, at)); }
  countApiKeys(): number { return this.inner.countApiKeys(); }
  putModel(row: ModelRow): void { this.log.write(() => this.inner.putModel(row)); }
  getModel(hash: string): ModelRow | undefined { return this.inner.getModel(hash); }
  putDataset(row: DatasetRow): void { this.log.write(() => this.inner.putDataset(row)); }
  getDataset(hash: string): DatasetRow | undefined { return this.inner.getDataset(hash); }

  // Rankings and sites.

  listVolunteers(): VolunteerRow[] { this.flush(); return this.inner.listVolunteers(); }
  topVolunteers(limit: number): VolunteerRow[] { this.flush(); return this.inner.topVolunteers(limit); }
  volunteerRank(id: string): number { this.flush(); return this.inner.volunteerRank(id); }
  topTeams(limit: number): TeamRow[] { this.flush(); return this.inner.topTeams(limit); }
  creditSite(origin: string, credit: number, now: number): void { this.log.defer(() => this.inner.creditSite(origin, credit, now)); }
  topSites(limit: number): SiteRow[] { this.flush(); return this.inner.topSites(limit); }

  // Retention (a deleted job is forgotten by the live state: see LiveStore.deleteJob).

  jobsToPrune(): string[] { this.flush(); return this.inner.jobsToPrune(); }
  pruneReplicaOutputs(jobId: string): number { return this.log.write(() => this.inner.pruneReplicaOutputs(jobId)); }
  jobsFinishedBefore(at: number): string[] { this.flush(); return this.inner.jobsFinishedBefore(at); }
  jobBytes(jobId: string): JobBytes { this.flush(); return this.inner.jobBytes(jobId); }
  blobUsers(hashes: string[]): Map<string, number> { this.flush(); return this.inner.blobUsers(hashes); }
  markUnusedBlobs(now: number): void { this.log.write(() => this.inner.markUnusedBlobs(now)); }
  removeUnusedBlobs(since: number): RemovedBlobs { return this.log.write(() => this.inner.removeUnusedBlobs(since)); }
  compact(): void { if (!this.log.inTransaction) this.inner.compact(); }

  recordClassPair(a: string, b: string, agree: boolean): void { this.log.defer(() => this.inner.recordClassPair(a, b, agree)); }
  classPairs(): ClassPairRow[] { this.flush(); return this.inner.classPairs(); }
}

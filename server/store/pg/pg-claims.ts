/**
 * The SQL of servers sharing one PostgreSQL database: each server's row (its heartbeat: `tabgrid_fence`, also run
 * first in each of its write transactions, so a server declared dead cannot commit), the slices of work each one
 * claims (SKIP LOCKED, so two servers never wait for or take the same slice), and declaring servers dead when
 * their heartbeat is older than the time to live, which frees their slices for the others. Times are the
 * database's clock, so servers' clocks need not agree. What a cluster tick asks is sent without waiting (the server's
 * thread goes on with its work meanwhile): those methods resolve when the database has answered.
 */
import type { JobStatus } from '../../../shared/protocol.js';
import type { OriginUse } from '../../cluster/origin-share.js';
import type { PgSync } from './pg-sync.js';

const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

export interface ClaimedSlice { jobId: string; slice: number }

export class PgClaims {
  constructor(private readonly pg: PgSync, readonly serverId: string) {}

  /** Adds this server's row, alive (before its first write: the fence needs it); again with its URL once it listens. */
  register(url: string | null): void {
    this.pg.query(`INSERT INTO servers (id, url, started_at, seen_at, alive) VALUES ($1, $2, ${NOW_MS}, ${NOW_MS}, true)
      ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url`, [this.serverId, url]);
  }

  /** Says this server is alive; rejects (SQLSTATE TG001) when the others have declared it dead. */
  async heartbeat(): Promise<void> {
    await this.pg.ask([{ text: 'SELECT tabgrid_fence($1)', values: [this.serverId] }]);
  }

  /**
   * Declares dead the servers not heard from within `ttlMs` and frees their slices; returns their ids. A server in
   * the middle of a commit holds its row's lock (the fence), so it is never declared dead under its own commit; its
   * heartbeat also goes on from the connection's own thread while the server's thread is busy (PgSync's `beat`).
   */
  async declareDead(ttlMs: number): Promise<string[]> {
    const [dead] = await this.pg.ask([
      // SKIP LOCKED: a server in the middle of a commit holds its row (the fence) and is alive, however long it takes.
      { text: `UPDATE servers SET alive = false WHERE id IN (SELECT id FROM servers WHERE alive AND seen_at < ${NOW_MS} - $1 FOR UPDATE SKIP LOCKED) RETURNING id`, values: [ttlMs] },
      { text: 'UPDATE slices SET server_id = NULL WHERE server_id IN (SELECT id FROM servers WHERE NOT alive)' },
    ]);
    return dead!.map((r) => String(r.id));
  }

  /** The public URLs of the other servers alive. */
  async peers(): Promise<string[]> {
    return (await this.one('SELECT url FROM servers WHERE alive AND id <> $1 AND url IS NOT NULL ORDER BY started_at', [this.serverId])).map((r) => String(r.url));
  }

  private async one(text: string, values: unknown[] = []): Promise<Record<string, unknown>[]> {
    return (await this.pg.ask([{ text, values }]))[0]!;
  }

  /** Running jobs' ids and every job's status that changed since... (all running ones, and those given). */
  async jobStatuses(ids: string[]): Promise<{ id: string; status: JobStatus }[]> {
    return (await this.one("SELECT id, status FROM jobs WHERE status = 'running' OR id = ANY($1::text[])", [ids])) as { id: string; status: JobStatus }[];
  }

  /** Claims up to `n` unclaimed open slices of these jobs, in the order given (fair share's), oldest slice first. */
  async claim(jobIds: string[], n: number): Promise<ClaimedSlice[]> {
    if (n <= 0 || jobIds.length === 0) return [];
    const rows = await this.one(`
      UPDATE slices SET server_id = $1 WHERE (job_id, slice) IN (
        SELECT s.job_id, s.slice FROM slices s JOIN unnest($2::text[]) WITH ORDINALITY AS j(id, rank) ON j.id = s.job_id
        WHERE NOT s.done AND s.server_id IS NULL ORDER BY j.rank, s.slice LIMIT $3 FOR UPDATE OF s SKIP LOCKED)
      RETURNING job_id, slice`, [this.serverId, jobIds, n]);
    return rows.map((r) => ({ jobId: String(r.job_id), slice: Number(r.slice) }));
  }

  /** Gives slices back (unclaimed, still open). */
  async release(slices: ClaimedSlice[]): Promise<void> {
    if (slices.length === 0) return;
    await this.one('UPDATE slices SET server_id = NULL WHERE server_id = $1 AND (job_id, slice) IN (SELECT * FROM unnest($2::text[], $3::int[]))',
      [this.serverId, slices.map((s) => s.jobId), slices.map((s) => s.slice)]);
  }

  /** Notes slices finished: no open task left in them. */
  async finish(slices: ClaimedSlice[]): Promise<void> {
    if (slices.length === 0) return;
    await this.one('UPDATE slices SET done = true, server_id = NULL WHERE (job_id, slice) IN (SELECT * FROM unnest($1::text[], $2::int[]))',
      [slices.map((s) => s.jobId), slices.map((s) => s.slice)]);
  }

  /** Opens slices again (a task in them was reopened), to be claimed by whoever has workers. */
  reopen(slices: ClaimedSlice[]): void {
    if (slices.length === 0) return;
    this.pg.query('UPDATE slices SET done = false WHERE (job_id, slice) IN (SELECT * FROM unnest($1::text[], $2::int[]))',
      [slices.map((s) => s.jobId), slices.map((s) => s.slice)]);
  }

  /** Running jobs whose slices are all finished (candidates to complete). */
  async finishedRunningJobs(): Promise<string[]> {
    return (await this.one(`SELECT j.id FROM jobs j WHERE j.status = 'running'
      AND NOT EXISTS (SELECT 1 FROM slices s WHERE s.job_id = j.id AND NOT s.done)`)).map((r) => String(r.id));
  }

  /**
   * Says what each origin holds on this server (replacing what it said before), and returns what they hold on the other
   * servers alive, summed per origin. One round trip.
   */
  async shareOrigins(mine: OriginUse[]): Promise<OriginUse[]> {
    const [, , rows] = await this.pg.ask([
      { text: 'DELETE FROM origin_use WHERE server_id = $1', values: [this.serverId] },
      {
        text: 'INSERT INTO origin_use (server_id, origin, connections, newcomer_leases) SELECT $1, * FROM unnest($2::text[], $3::int[], $4::int[])',
        values: [this.serverId, mine.map((u) => u.origin), mine.map((u) => u.connections), mine.map((u) => u.newcomerLeases)],
      },
      {
        text: `SELECT o.origin, SUM(o.connections)::int AS connections, SUM(o.newcomer_leases)::int AS newcomer_leases FROM origin_use o
          JOIN servers s ON s.id = o.server_id WHERE s.alive AND o.server_id <> $1 GROUP BY o.origin`,
        values: [this.serverId],
      },
    ]);
    return rows!.map((r) => ({ origin: String(r.origin), connections: Number(r.connections), newcomerLeases: Number(r.newcomer_leases) }));
  }

  /** Leaves the cluster cleanly: slices freed, row marked dead. */
  leave(): void {
    this.pg.run([
      { text: 'DELETE FROM origin_use WHERE server_id = $1', values: [this.serverId] },
      { text: 'UPDATE slices SET server_id = NULL WHERE server_id = $1', values: [this.serverId] },
      { text: 'UPDATE servers SET alive = false WHERE id = $1', values: [this.serverId] },
    ]);
  }
}

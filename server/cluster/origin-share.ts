/**
 * Per-origin caps across servers that share a database. A network origin (an IPv4 address, an IPv6 /64) may hold
 * `maxConnectionsPerOrigin` worker connections and `newcomerLeasesPerOrigin` newcomers' leases in the whole network,
 * not on each server: each server tells the others, at every cluster tick, what each origin holds on it, and counts
 * what the others hold against the caps. What another server holds is known as of its last tick (500 ms by default),
 * so an origin can go over a cap by what it gains elsewhere within one tick. One server alone: nothing is elsewhere.
 */
export interface OriginUse { origin: string; connections: number; newcomerLeases: number }

type Counts = Iterable<[origin: string, n: number]>;

export class OriginShare {
  private elsewhere = new Map<string, OriginUse>();
  private connectionsHere: () => Counts = () => [];
  private newcomerLeasesHere: () => Counts = () => [];

  /** Where this server's own counts come from: its connections (the socket guards) and newcomers' leases (the scheduler). */
  provide(counts: { connections?: () => Counts; newcomerLeases?: () => Counts }): void {
    if (counts.connections) this.connectionsHere = counts.connections;
    if (counts.newcomerLeases) this.newcomerLeasesHere = counts.newcomerLeases;
  }

  /**
   * What each origin holds on this server, to tell the others: those with more than one connection here or any
   * newcomer's lease. A lone connection is left out (most volunteers: it would be a row per volunteer per tick); an
   * origin can hold at most one connection per server that way unseen.
   */
  mine(): OriginUse[] {
    const out = new Map<string, OriginUse>();
    const row = (origin: string) => {
      let r = out.get(origin);
      if (!r) out.set(origin, (r = { origin, connections: 0, newcomerLeases: 0 }));
      return r;
    };
    for (const [origin, n] of this.newcomerLeasesHere()) if (n > 0) row(origin).newcomerLeases = n;
    for (const [origin, n] of this.connectionsHere()) if (n > 1 || (n > 0 && out.has(origin))) row(origin).connections = n;
    return [...out.values()];
  }

  /** What the other servers alive hold, summed per origin (replaces what was known). */
  learn(rows: OriginUse[]): void {
    this.elsewhere = new Map(rows.map((r) => [r.origin, r]));
  }

  connectionsElsewhere(origin: string): number {
    return this.elsewhere.get(origin)?.connections ?? 0;
  }

  newcomerLeasesElsewhere(origin: string): number {
    return this.elsewhere.get(origin)?.newcomerLeases ?? 0;
  }
}

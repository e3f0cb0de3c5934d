/**
 * Fair share between researchers: which running job a free slot goes to first. Owners (API keys) are served in
 * turn by how much they have been given for their weight, so a small job of one researcher is not held behind a big job of
 * another; priority orders the jobs of one owner only. An owner that comes back after a while starts level with
 * the least-served owner already running, so it gets the next slots but cannot starve anyone on credit saved up.
 */

/** What ordering needs to know of a running job; `weight` is its owner's share (2 gets twice the slots of 1). */
export interface RunningJob { id: string; owner: string; priority: number; createdAt: number; weight: number }

export class FairShare {
  /** Per owner with running jobs: leases given so far (the owner's virtual time). */
  private readonly served = new Map<string, number>();

  /** The running jobs in the order slots should go to them. */
  order(jobs: readonly RunningJob[]): string[] {
    const owners = new Set(jobs.map((j) => j.owner));
    let floor = Infinity;
    for (const [owner, n] of this.served) {
      if (owners.has(owner)) floor = Math.min(floor, n);
      else this.served.delete(owner); // no running job: forgotten, and level with the others when it returns
    }
    for (const owner of owners) if (!this.served.has(owner)) this.served.set(owner, floor === Infinity ? 0 : floor);
    return [...jobs].sort((a, b) => (this.served.get(a.owner)! - this.served.get(b.owner)!)
      || (a.owner === b.owner ? b.priority - a.priority || a.createdAt - b.createdAt : a.owner < b.owner ? -1 : 1)
      || (a.id < b.id ? -1 : 1)).map((j) => j.id);
  }

  /** An owner of this weight was given `n` leases. */
  charge(owner: string, weight = 1, n = 1): void {
    this.served.set(owner, (this.served.get(owner) ?? 0) + n / Math.max(weight, 1e-6));
  }
}

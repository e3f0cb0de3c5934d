/**
 * Decides a task from the replicas returned so far. Pure: no store, no sockets.
 * A result is accepted when `quorum` replicas agree with one another within the job's tolerance, they come
 * from at least two distinct network origins (an identity is free, an address is not), and at least one of
 * them comes from a volunteer who can vouch for it (vetted by canaries, confirmed work and tenure). A quorum
 * that falls short of that (one origin, or nobody vetted), and replicas that never form a quorum by the cap,
 * go to the server's own run ('check'): a crowd of identities behind one address cannot outvote anyone, and
 * a task is never failed on volunteers' word alone.
 */
import { compareOutputs, type Tolerance } from '../../shared/compare.js';
import type { Tensor } from '../../shared/tensor.js';

export interface ReturnedReplica {
  id: string;
  outputs: Tensor[];
  /** Whether this replica's volunteer can vouch for a quorum. */
  vouches: boolean;
  /** The network origin it came from; null counts as an origin of its own. */
  origin: string | null;
}

export interface VerifyPolicy extends Tolerance {
  quorum: number;
  maxReplicas: number;
  /** No volunteer who could vouch is online: replicas nobody vouches for go to the server's run without waiting. */
  checkUnvouched?: boolean;
}

/** One comparison made, for the per-class agreement statistics. */
export interface PairResult { a: string; b: string; agree: boolean }

export type Decision = (
  | { verdict: 'accept'; replicaId: string; agreeing: string[]; disagreeing: string[] }
  | { verdict: 'wait' }
  | { verdict: 'more'; detail: string }
  | { verdict: 'check'; detail: string }
) & { pairs: PairResult[] };

/** Distinct origins it takes for a quorum of `quorum` replicas to stand without the server's own run. */
const originsNeeded = (quorum: number) => Math.min(quorum, 2);

/**
 * `wanted` is how many replicas the task asks for now; `inFlight` how many are leased and not back.
 */
export function decide(returned: readonly ReturnedReplica[], wanted: number, inFlight: number, policy: VerifyPolicy): Decision {
  const n = returned.length;
  const agree: boolean[][] = Array.from({ length: n }, () => new Array<boolean>(n).fill(true));
  const pairs: PairResult[] = [];
  let lastDetail = '';
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const r = compareOutputs(returned[i].outputs, returned[j].outputs, policy);
      agree[i][j] = agree[j][i] = r.verdict === 'agree';
      if (r.verdict === 'disagree') lastDetail = r.detail;
      pairs.push({ a: returned[i].id, b: returned[j].id, agree: agree[i][j] });
    }
  }
  if (policy.checkUnvouched && n > 0 && !returned.some((r) => r.vouches)) {
    return { verdict: 'check', detail: 'no vetted volunteer is online to vouch for these replicas', pairs };
  }
  let weakQuorum: string | null = null;
  for (let i = 0; i < n; i++) {
    const group = returned.filter((_, j) => agree[i][j]);
    if (group.length < policy.quorum) continue;
    const origins = new Set(group.map((r) => r.origin ?? `replica:${r.id}`)).size;
    if (origins < originsNeeded(policy.quorum)) { weakQuorum ??= `${group.length} replicas agree, all from one network origin`; continue; }
    if (!group.some((r) => r.vouches)) { weakQuorum ??= 'replicas agree, but none of their volunteers is vetted yet'; continue; }
    return {
      verdict: 'accept', replicaId: returned[i].id, agreeing: group.map((r) => r.id),
      disagreeing: returned.filter((_, j) => !agree[i][j]).map((r) => r.id), pairs,
    };
  }
  // A quorum that cannot stand alone goes to the server now: a replica still out (a hoarder's, say) must not
  // hold the task until its lease lapses.
  if (weakQuorum) return { verdict: 'check', detail: weakQuorum, pairs };
  if (inFlight > 0 || n + inFlight < wanted) return { verdict: 'wait', pairs };
  const detail = `replicas disagree: ${lastDetail}`;
  if (wanted < policy.maxReplicas) return { verdict: 'more', detail, pairs };
  return { verdict: 'check', detail: `no ${policy.quorum} of ${n} replicas agree; ${detail}`, pairs };
}

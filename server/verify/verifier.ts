/**
 * Decides a task from the replicas returned so far. Pure: no store, no sockets.
 * A result is accepted when `quorum` replicas agree with one another within the job's tolerance and at
 * least one of them comes from a volunteer who can vouch for it (vetted by a canary or by confirmed work),
 * so a group of newcomers who agree on a wrong answer cannot carry a task. Until then the task waits for
 * replicas in flight, asks for one more, waits for a member to be vetted, or gives up at the cap.
 */
import { compareOutputs, type Tolerance } from '../../shared/compare.js';
import type { Tensor } from '../../shared/tensor.js';

export interface ReturnedReplica {
  id: string;
  outputs: Tensor[];
  /** Whether this replica's volunteer can vouch for a quorum. */
  vouches: boolean;
}

export interface VerifyPolicy extends Tolerance {
  quorum: number;
  maxReplicas: number;
}

/** One comparison made, for the per-class agreement statistics. */
export interface PairResult { a: string; b: string; agree: boolean }

export type Decision = (
  | { verdict: 'accept'; replicaId: string; agreeing: string[]; disagreeing: string[] }
  | { verdict: 'wait'; trustPending?: boolean }
  | { verdict: 'more'; detail: string }
  | { verdict: 'fail'; detail: string }
) & { pairs: PairResult[] };

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
  let unvouchedQuorum = false;
  for (let i = 0; i < n; i++) {
    const group = returned.filter((_, j) => agree[i][j]);
    if (group.length < policy.quorum) continue;
    if (!group.some((r) => r.vouches)) { unvouchedQuorum = true; continue; }
    return {
      verdict: 'accept', replicaId: returned[i].id, agreeing: group.map((r) => r.id),
      disagreeing: returned.filter((_, j) => !agree[i][j]).map((r) => r.id), pairs,
    };
  }
  if (inFlight > 0 || n + inFlight < wanted) return { verdict: 'wait', pairs };
  const detail = unvouchedQuorum
    ? 'replicas agree, but none of their volunteers is vetted yet'
    : `replicas disagree: ${lastDetail}`;
  if (wanted < policy.maxReplicas) return { verdict: 'more', detail, pairs };
  if (unvouchedQuorum) return { verdict: 'wait', trustPending: true, pairs };
  return { verdict: 'fail', detail: `no ${policy.quorum} of ${n} replicas agree; ${detail}`, pairs };
}

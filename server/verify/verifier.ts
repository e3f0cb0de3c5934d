/**
 * Decides a task from the replicas returned so far. Pure: no store, no sockets.
 * A result is accepted when `quorum` replicas agree with one another within the job's tolerance.
 * Until then, the task either waits for replicas in flight, asks for one more, or gives up at the cap.
 */
import { compareOutputs, type Tolerance } from '../../shared/compare.js';
import type { Tensor } from '../../shared/tensor.js';

export interface ReturnedReplica { id: string; outputs: Tensor[] }

export interface VerifyPolicy extends Tolerance {
  quorum: number;
  maxReplicas: number;
}

export type Decision =
  | { verdict: 'accept'; replicaId: string; agreeing: string[] }
  | { verdict: 'wait' }
  | { verdict: 'more'; detail: string }
  | { verdict: 'fail'; detail: string };

/**
 * `wanted` is how many replicas the task asks for now; `inFlight` how many are leased and not back.
 */
export function decide(returned: readonly ReturnedReplica[], wanted: number, inFlight: number, policy: VerifyPolicy): Decision {
  let lastDetail = '';
  for (const candidate of returned) {
    const agreeing = [candidate.id];
    for (const other of returned) {
      if (other === candidate) continue;
      const r = compareOutputs(candidate.outputs, other.outputs, policy);
      if (r.verdict === 'agree') agreeing.push(other.id);
      else lastDetail = r.detail;
    }
    if (agreeing.length >= policy.quorum) return { verdict: 'accept', replicaId: candidate.id, agreeing };
  }
  if (returned.length + inFlight < wanted) return { verdict: 'wait' };
  if (inFlight > 0) return { verdict: 'wait' };
  // Every replica asked for is back, and no quorum agrees.
  const detail = `replicas disagree: ${lastDetail}`;
  if (wanted < policy.maxReplicas) return { verdict: 'more', detail };
  return { verdict: 'fail', detail: `no ${policy.quorum} of ${returned.length} replicas agree; ${detail}` };
}

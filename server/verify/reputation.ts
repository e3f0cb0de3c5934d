/**
 * Volunteer reputation, pure: what a replica's outcome does to a volunteer's record, when a volunteer is
 * trusted enough to vouch for a quorum (vetted), when it is quarantined, and how likely its work is to be
 * accepted on one replica (BOINC's adaptive replication).
 */
import type { VolunteerPatch, VolunteerRow } from '../store/store.js';

export const Outcome = {
  valid: 'valid',
  invalid: 'invalid',
  canaryPass: 'canary-pass',
  canaryFail: 'canary-fail',
  error: 'error',
} as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

export interface ReputationPolicy {
  /** Valid replicas (each confirmed by a vetted volunteer or a known answer) that vet a volunteer. */
  validToVet: number;
  /** Invalid replicas before quarantine is considered. */
  quarantineAfter: number;
  /** Quarantine when invalid / (valid + invalid) exceeds this. */
  quarantineRate: number;
  /** Consecutive valid replicas before single-replica acceptance starts. */
  trustStreak: number;
  /** Ceiling on the chance of single-replica acceptance: the rest is always replicated, as a spot check. */
  maxSingleChance: number;
  /** Weight of a wrong canary answer in `invalid`. */
  canaryPenalty: number;
}

export const DEFAULT_REPUTATION: ReputationPolicy = {
  validToVet: 3, quarantineAfter: 3, quarantineRate: 0.2, trustStreak: 10, maxSingleChance: 0.9, canaryPenalty: 3,
};

type Record = Pick<VolunteerRow, 'valid' | 'invalid' | 'errors' | 'streak' | 'canaryPassed' | 'canaryFailed' | 'credit' | 'quarantinedAt'>;

/** Whether a volunteer's agreement can make a quorum count: it has passed a canary or been confirmed enough. */
export function isVetted(v: Record, p: ReputationPolicy = DEFAULT_REPUTATION): boolean {
  return v.quarantinedAt === null && v.canaryFailed === 0 && (v.canaryPassed > 0 || v.valid >= p.validToVet);
}

/** The changes one outcome makes to a record; `credit` is granted only for validated work. */
export function applyOutcome(v: Record, outcome: Outcome, credit: number, now: number, p: ReputationPolicy = DEFAULT_REPUTATION): VolunteerPatch {
  const next: VolunteerPatch = {};
  switch (outcome) {
    case 'valid':
      Object.assign(next, { valid: v.valid + 1, streak: v.streak + 1, credit: v.credit + credit });
      break;
    case 'canary-pass':
      Object.assign(next, { valid: v.valid + 1, streak: v.streak + 1, canaryPassed: v.canaryPassed + 1, credit: v.credit + credit });
      break;
    case 'invalid':
      Object.assign(next, { invalid: v.invalid + 1, streak: 0 });
      break;
    case 'canary-fail':
      Object.assign(next, { invalid: v.invalid + p.canaryPenalty, streak: 0, canaryFailed: v.canaryFailed + 1 });
      break;
    case 'error':
      Object.assign(next, { errors: v.errors + 1 });
      break;
  }
  const valid = next.valid ?? v.valid;
  const invalid = next.invalid ?? v.invalid;
  if (v.quarantinedAt === null && invalid >= p.quarantineAfter && invalid / (valid + invalid) > p.quarantineRate) {
    next.quarantinedAt = now;
  }
  return next;
}

/**
 * Takes back one invalid mark (the result it disagreed with was itself taken back); lifts a quarantine that
 * no longer holds, unless the volunteer ever failed a known answer.
 */
export function undoInvalid(v: Record, p: ReputationPolicy = DEFAULT_REPUTATION): VolunteerPatch {
  const invalid = Math.max(0, v.invalid - 1);
  const patch: VolunteerPatch = { invalid };
  const stillBad = invalid >= p.quarantineAfter && invalid / (v.valid + invalid || 1) > p.quarantineRate;
  if (v.quarantinedAt !== null && v.canaryFailed === 0 && !stillBad) patch.quarantinedAt = null;
  return patch;
}

/** Chance that a task leased to this volunteer is accepted on its replica alone. */
export function singleReplicaChance(v: Record, p: ReputationPolicy = DEFAULT_REPUTATION): number {
  if (!isVetted(v, p) || v.streak < p.trustStreak) return 0;
  return Math.min(p.maxSingleChance, 1 - p.trustStreak / (2 * v.streak));
}

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
  /** Valid replicas (each confirmed by a vetted volunteer of another origin, a known answer or the server) that vet a volunteer. */
  validToVet: number;
  /** Known answers passed that vet a volunteer (besides `validToVet` and the tenure). */
  canariesToVet: number;
  /** How long (ms) since its first contact before a volunteer can be vetted: sleepers must stay honest that long. */
  tenureMs: number;
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
  validToVet: 5, canariesToVet: 2, tenureMs: 60_000, quarantineAfter: 3, quarantineRate: 0.2, trustStreak: 20, maxSingleChance: 0.9,
  canaryPenalty: 3,
};

type Record = Pick<VolunteerRow, 'valid' | 'invalid' | 'errors' | 'streak' | 'canaryPassed' | 'canaryFailed' | 'credit' | 'quarantinedAt' | 'createdAt'>;

/**
 * Whether a volunteer's agreement can make a quorum count: several known answers passed, a run of confirmed
 * results, some tenure, and never a wrong known answer (nor a result the server's own run or an audit refuted).
 */
export function isVetted(v: Record, now: number, p: ReputationPolicy = DEFAULT_REPUTATION): boolean {
  return v.quarantinedAt === null && v.canaryFailed === 0 && v.canaryPassed >= p.canariesToVet && v.valid >= p.validToVet
    && now - v.createdAt >= p.tenureMs;
}

/** A volunteer whose record is still short: its accepted results are audited more often. */
export function isYoung(v: Record, now: number, p: ReputationPolicy = DEFAULT_REPUTATION): boolean {
  return !isVetted(v, now, p) || v.valid < p.trustStreak || now - v.createdAt < 10 * p.tenureMs;
}

/**
 * Leases a volunteer may hold at once: a newcomer few (`newcomer`), a vetted one more as its record grows,
 * up to `max`. A hoarder with free identities holds little each.
 */
export function leaseCap(v: Record, now: number, newcomer: number, max: number, p: ReputationPolicy = DEFAULT_REPUTATION): number {
  if (!isVetted(v, now, p)) return newcomer;
  return Math.min(max, Math.max(newcomer, 4 + Math.floor(v.valid / 25)));
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
export function singleReplicaChance(v: Record, now: number, p: ReputationPolicy = DEFAULT_REPUTATION): number {
  if (!isVetted(v, now, p) || v.streak < p.trustStreak) return 0;
  return Math.min(p.maxSingleChance, 1 - p.trustStreak / (2 * v.streak));
}

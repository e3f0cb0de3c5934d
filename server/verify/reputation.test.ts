import { describe, expect, it } from 'vitest';
import { DEFAULT_REPUTATION, applyOutcome, isVetted, isYoung, leaseCap, singleReplicaChance, undoInvalid } from './reputation.js';

const fresh = {
  valid: 0, invalid: 0, errors: 0, streak: 0, canaryPassed: 0, canaryFailed: 0, credit: 0, quarantinedAt: null as number | null, createdAt: 0,
};
/** Old enough to be vetted. */
const LATER = DEFAULT_REPUTATION.tenureMs;

describe('reputation', () => {
  it('vets a volunteer only on several known answers, a run of confirmed results and some tenure', () => {
    expect(isVetted(fresh, LATER)).toBe(false);
    // One known answer is not enough any more, nor are confirmed results alone.
    expect(isVetted({ ...fresh, ...applyOutcome(fresh, 'canary-pass', 1, 0) }, LATER)).toBe(false);
    expect(isVetted({ ...fresh, valid: 30 }, LATER)).toBe(false);
    const record = { ...fresh, canaryPassed: 2, valid: 5 };
    expect(isVetted(record, LATER)).toBe(true);
    expect(isVetted(record, LATER - 1)).toBe(false);
    expect(isVetted({ ...record, canaryFailed: 1 }, LATER)).toBe(false);
  });

  it('lets a newcomer hold few leases and a vetted volunteer more as its record grows', () => {
    expect(leaseCap(fresh, LATER, 2, 32)).toBe(2);
    expect(leaseCap({ ...fresh, canaryPassed: 2, valid: 5 }, LATER, 2, 32)).toBe(4);
    expect(leaseCap({ ...fresh, canaryPassed: 2, valid: 5000 }, LATER, 2, 32)).toBe(32);
  });

  it('counts a volunteer as young until its record is long', () => {
    expect(isYoung({ ...fresh, canaryPassed: 2, valid: 5 }, LATER)).toBe(true);
    expect(isYoung({ ...fresh, canaryPassed: 2, valid: 500 }, 10 * LATER)).toBe(false);
  });

  it('quarantines a newcomer at its first wrong canary, with no credit', () => {
    const patch = applyOutcome(fresh, 'canary-fail', 5, 1234);
    expect(patch).toMatchObject({ invalid: 3, canaryFailed: 1, quarantinedAt: 1234 });
    expect(patch.credit).toBeUndefined();
  });

  it('quarantines one who keeps disagreeing, and spares a good record one slip', () => {
    let v = { ...fresh };
    for (let i = 0; i < 3; i++) v = { ...v, ...applyOutcome(v, 'invalid', 1, 7) };
    expect(v.quarantinedAt).toBe(7);
    const good = { ...fresh, valid: 50, streak: 50 };
    const slip = applyOutcome({ ...good, invalid: 2 }, 'invalid', 1, 9);
    expect(slip.quarantinedAt).toBeUndefined();
    expect(slip.streak).toBe(0);
  });

  it('grants credit only for validated work', () => {
    expect(applyOutcome(fresh, 'valid', 16, 0)).toMatchObject({ credit: 16, valid: 1, streak: 1 });
    expect(applyOutcome(fresh, 'error', 16, 0)).toEqual({ errors: 1 });
  });

  it('raises the single-replica chance with the streak, never to certainty', () => {
    const vetted = { ...fresh, canaryPassed: 2, valid: 5 };
    expect(singleReplicaChance({ ...vetted, streak: 19 }, LATER)).toBe(0);
    expect(singleReplicaChance({ ...vetted, streak: 20 }, LATER)).toBeCloseTo(0.5);
    expect(singleReplicaChance({ ...vetted, streak: 1000 }, LATER)).toBe(0.9);
    expect(singleReplicaChance({ ...fresh, streak: 1000 }, LATER)).toBe(0);
  });

  it('takes back an invalid mark, and the quarantine it caused, but never one from a failed canary', () => {
    const v = { ...fresh, valid: 4, invalid: 3, quarantinedAt: 5 };
    expect(undoInvalid(v)).toEqual({ invalid: 2, quarantinedAt: null });
    expect(undoInvalid({ ...v, canaryFailed: 1 })).toEqual({ invalid: 2 });
    expect(undoInvalid({ ...fresh, invalid: 0 })).toEqual({ invalid: 0 });
  });
});

import { describe, expect, it } from 'vitest';
import { FairShare, type RunningJob } from './fair-share.js';

const job = (id: string, owner: string, priority = 0, createdAt = 0, weight = 1): RunningJob => ({ id, owner, priority, createdAt, weight });

describe('FairShare', () => {
  it('gives the next slot to the owner served least, whatever the age of its job', () => {
    const f = new FairShare();
    const jobs = [job('big', 'a', 0, 1), job('small', 'b', 0, 2)];
    expect(f.order(jobs)[0]).toBe('big');
    f.charge('a', 1, 5);
    expect(f.order(jobs)).toEqual(['small', 'big']);
    f.charge('b', 1, 6);
    expect(f.order(jobs)).toEqual(['big', 'small']);
  });

  it('orders one owner\'s jobs by priority, then age', () => {
    const f = new FairShare();
    expect(f.order([job('old', 'a', 0, 1), job('urgent', 'a', 5, 3), job('new', 'a', 0, 2)])).toEqual(['urgent', 'old', 'new']);
  });

  it('starts an owner that arrives late level with the least-served one, not at zero', () => {
    const f = new FairShare();
    f.order([job('big', 'a')]);
    f.charge('a', 1, 1000);
    const both = [job('big', 'a'), job('small', 'b')];
    expect(f.order(both)).toEqual(['big', 'small']); // level: the tie goes by owner
    f.charge('a');
    // b started level with a (1000), so after one more lease to a, b is first; it is not owed 1000 leases.
    expect(f.order(both)[0]).toBe('small');
    f.charge('b', 1, 2);
    expect(f.order(both)[0]).toBe('big');
  });

  it('gives an owner of weight 2 twice the slots of an owner of weight 1', () => {
    const f = new FairShare();
    const jobs = [job('a', 'a', 0, 1, 2), job('b', 'b', 0, 2, 1)];
    const given: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 30; i++) {
      const first = f.order(jobs)[0]!;
      given[first]++;
      f.charge(first, first === 'a' ? 2 : 1);
    }
    expect(given).toEqual({ a: 20, b: 10 });
  });
});

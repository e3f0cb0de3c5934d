import { describe, expect, it } from 'vitest';
import { WarmPool } from './warm-pool.js';

describe('WarmPool', () => {
  it('sizes a pool by its recent demand, forgets old demand, and lets an idle pool go', () => {
    const pool = new WarmPool();
    const t0 = 1_000_000;
    pool.used('m', t0);
    expect(pool.target('m', t0)).toBe(2);
    for (let ms = 0; ms < 10_000; ms += 5) pool.used('m', t0 + ms); // 200 requests a second for 10 s
    expect(pool.target('m', t0 + 10_000)).toBe(8);
    // Twenty seconds later the demand has gone from the count.
    expect(pool.target('m', t0 + 30_000)).toBe(2);
    pool.add('m', 'w1', t0);
    pool.markReady('m', 'w1', 3);
    expect(pool.shrink(t0 + 30_000, 60_000)).toEqual([]);
    expect(pool.shrink(t0 + 80_000, 60_000)).toEqual([{ model: 'm', workerIds: ['w1'] }]);
    expect(pool.members('m')).toEqual([]);
  });
});

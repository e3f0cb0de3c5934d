import { describe, expect, it } from 'vitest';
import { OriginShare } from './origin-share.js';

describe('OriginShare', () => {
  it('tells the others of origins with several connections or newcomers\' leases, not of each lone volunteer', () => {
    const share = new OriginShare();
    share.provide({
      connections: () => [['a', 1], ['b', 3], ['c', 1]],
      newcomerLeases: () => [['c', 2], ['d', 1]],
    });
    expect(share.mine().sort((x, y) => x.origin.localeCompare(y.origin))).toEqual([
      { origin: 'b', connections: 3, newcomerLeases: 0 },
      { origin: 'c', connections: 1, newcomerLeases: 2 },
      { origin: 'd', connections: 0, newcomerLeases: 1 },
    ]);
    share.learn([{ origin: 'b', connections: 2, newcomerLeases: 5 }]);
    expect([share.connectionsElsewhere('b'), share.newcomerLeasesElsewhere('b'), share.connectionsElsewhere('a')]).toEqual([2, 5, 0]);
  });
});

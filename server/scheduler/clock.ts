/** Time, injected so lease expiry can be tested with a fake clock instead of sleeps. */
export interface Clock { now(): number }

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to. */
export class FakeClock implements Clock {
  constructor(private t = 1_700_000_000_000) {}
  now(): number { return this.t; }
  advance(ms: number): void { this.t += ms; }
}

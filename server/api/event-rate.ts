/**
 * How fast one connection may send events: a token bucket (`perSecond` on average, bursts of twice that).
 * An event over the rate is refused; a connection that keeps sending over it (another `2 x perSecond` refusals
 * beyond what the rate forgives) is to be dropped. Time is passed in, so tests need no clock.
 */

/** Refills continuously at `perSecond`, holds at most `capacity`. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(private readonly perSecond: number, private readonly capacity: number, now: number) {
    this.tokens = capacity;
    this.at = now;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.tokens = Math.min(this.capacity, this.tokens + (Math.max(0, now - this.at) * this.perSecond) / 1000);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export type RateVerdict = 'run' | 'refuse' | 'drop';

export class EventRate {
  private readonly events: TokenBucket;
  /** Refusals forgiven: a client that bursts past the rate now and then is refused, never dropped. */
  private readonly patience: TokenBucket;

  constructor(perSecond: number, now: number) {
    this.events = new TokenBucket(perSecond, 2 * perSecond, now);
    this.patience = new TokenBucket(perSecond, 2 * perSecond, now);
  }

  admit(now: number): RateVerdict {
    if (this.events.take(now)) return 'run';
    return this.patience.take(now) ? 'refuse' : 'drop';
  }
}

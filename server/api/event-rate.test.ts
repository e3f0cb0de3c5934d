import { describe, expect, it } from 'vitest';
import { EventRate, TokenBucket } from './event-rate.js';

describe('TokenBucket', () => {
  it('allows a burst of its capacity, then the rate', () => {
    const b = new TokenBucket(10, 20, 0);
    expect(Array.from({ length: 25 }, () => b.take(0)).filter(Boolean)).toHaveLength(20);
    expect(b.take(50)).toBe(false); // half a token back after 50 ms
    expect(b.take(100)).toBe(true);
    expect(b.take(100)).toBe(false);
    // Idle for a long time: full again, no more.
    expect(Array.from({ length: 30 }, () => b.take(60_000)).filter(Boolean)).toHaveLength(20);
  });
});

describe('EventRate', () => {
  it('runs events at the rate with a burst of twice it, refuses the rest, and drops a flood', () => {
    const r = new EventRate(5, 0);
    const first = Array.from({ length: 30 }, () => r.admit(0));
    expect(first.slice(0, 10)).toEqual(Array(10).fill('run'));
    expect(first.slice(10, 20)).toEqual(Array(10).fill('refuse'));
    expect(first.slice(20)).toEqual(Array(10).fill('drop'));
  });

  it('never drops a client that stays at the rate after a burst', () => {
    const r = new EventRate(5, 0);
    const verdicts: string[] = [];
    for (let i = 0; i < 15; i++) verdicts.push(r.admit(0)); // a burst: 10 run, 5 refused
    for (let t = 200; t <= 60_000; t += 200) verdicts.push(r.admit(t)); // then 5 a second for a minute
    expect(verdicts).not.toContain('drop');
    expect(verdicts.slice(15).every((v) => v === 'run')).toBe(true);
  });
});

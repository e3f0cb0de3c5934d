import { describe, expect, it } from 'vitest';
import { ThrottledLine } from './throttled-line.js';

/** A clock that moves only when told, and its timers. */
function fakeTimers() {
  let now = 0;
  let due: { at: number; fn: () => void; id: number }[] = [];
  let ids = 0;
  return {
    now: () => now,
    setTimeout: (fn: () => void, ms: number) => { due.push({ at: now + ms, fn, id: ++ids }); return ids; },
    clearTimeout: (id: unknown) => { due = due.filter((t) => t.id !== id); },
    advance(ms: number) {
      now += ms;
      for (const t of due.filter((d) => d.at <= now)) { due = due.filter((d) => d !== t); t.fn(); }
    },
    pending: () => due.length,
  };
}

describe('ThrottledLine', () => {
  it('says the first line at once, then at most one per interval, always ending on the latest', () => {
    const timers = fakeTimers();
    const said: string[] = [];
    const line = new ThrottledLine((s) => said.push(s), 5_000, timers);
    line.set('tasks done: 1');
    expect(said).toEqual(['tasks done: 1']);
    for (let i = 2; i <= 500; i++) { timers.advance(5); line.set(`tasks done: ${i}`); }
    expect(said).toEqual(['tasks done: 1']);
    timers.advance(5_000);
    expect(said).toEqual(['tasks done: 1', 'tasks done: 500']);
    expect(timers.pending()).toBe(0);
    timers.advance(60_000);
    expect(said).toHaveLength(2);
    // Long after the last one, a change is said at once again.
    line.set('tasks done: 501');
    expect(said.at(-1)).toBe('tasks done: 501');
  });

  it('says a held line on flush, and nothing twice', () => {
    const timers = fakeTimers();
    const said: string[] = [];
    const line = new ThrottledLine((s) => said.push(s), 5_000, timers);
    line.set('a');
    timers.advance(100);
    line.set('b');
    line.flush();
    expect(said).toEqual(['a', 'b']);
    expect(timers.pending()).toBe(0);
    line.flush();
    timers.advance(10_000);
    expect(said).toEqual(['a', 'b']);
  });
});

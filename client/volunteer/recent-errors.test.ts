import { describe, expect, it } from 'vitest';
import { RecentErrors } from './recent-errors.js';

describe('recent errors', () => {
  it('lists newest first and counts an immediate repeat instead of adding it', () => {
    const e = new RecentErrors();
    e.add('cannot reach server', 1);
    e.add('cannot reach server', 2);
    e.add('task failed: bad input', 3);
    expect(e.list()).toEqual([
      { at: 3, message: 'task failed: bad input', count: 1 },
      { at: 2, message: 'cannot reach server', count: 2 },
    ]);
  });

  it('keeps only the last few', () => {
    const e = new RecentErrors(3);
    for (let i = 0; i < 5; i++) e.add(`error ${i}`, i);
    expect(e.list().map((x) => x.message)).toEqual(['error 4', 'error 3', 'error 2']);
  });
});

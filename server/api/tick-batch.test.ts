/**
 * The group commit: each event answered after the turn's one transaction, a unit that throws answered with its
 * error while the others stand, and, with an observer, each turn's commit time and each event's time from
 * arrival to reply reported.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../shared/errors.js';
import type { Store } from '../store/store.js';
import { TickBatch } from './tick-batch.js';

/** A store whose transaction runs its function; `fail` makes the outermost one throw (a commit that fails). */
function fakeStore(opts: { fail?: boolean } = {}): Store {
  let depth = 0;
  return {
    transaction<T>(fn: () => T): T {
      depth++;
      try {
        const out = fn();
        if (opts.fail && depth === 1) throw new Error('disk full');
        return out;
      } finally {
        depth--;
      }
    },
  } as unknown as Store;
}

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('TickBatch', () => {
  it('reports the commit and each event\'s time from arrival to reply', async () => {
    let t = 100;
    const heard: string[] = [];
    const batch = new TickBatch(fakeStore(), pino({ level: 'silent' }), { emit: (event, ...args: unknown[]) => heard.push([event, ...args].join(' ')) }, () => t);
    const replies: unknown[] = [];
    batch.add('work:request', () => { t += 5; return { tasks: [] }; }, (r) => replies.push(r));
    t += 1;
    batch.add('task:result', () => { throw new AppError('LEASE_NOT_HELD', 'not yours'); }, (r) => replies.push(r));
    await nextTurn();
    expect(replies).toEqual([{ ok: true, tasks: [] }, { ok: false, error: { code: 'LEASE_NOT_HELD', message: 'not yours' } }]);
    // The turn began at 101 and took 5; the first event waited from 100, the second from 101.
    expect(heard).toEqual(['tick:committed 2 5 true', 'socket:answered work:request 6', 'socket:answered task:result 5']);
  });

  it('reports a commit that failed, and answers every event of it with the error', async () => {
    const heard: string[] = [];
    const batch = new TickBatch(fakeStore({ fail: true }), pino({ level: 'silent' }), { emit: (event, ...args: unknown[]) => heard.push(`${event} ${args.at(-1)}`) });
    const replies: unknown[] = [];
    batch.add('work:request', () => ({}), (r) => replies.push(r));
    await nextTurn();
    expect(replies).toEqual([{ ok: false, error: { code: 'INTERNAL', message: 'internal error' } }]);
    expect(heard[0]).toBe('tick:committed false');
  });

  it('takes the server\'s own answers into the turn\'s one transaction, and tells each the outcome of its commit', async () => {
    let transactions = 0;
    const store = fakeStore();
    const outermost = store.transaction.bind(store);
    let depth = 0;
    store.transaction = <T>(fn: () => T): T => { if (depth++ === 0) transactions++; try { return outermost(fn); } finally { depth--; } };
    const batch = new TickBatch(store, pino({ level: 'silent' }));
    const ran: string[] = [];
    const landed: (string | null)[] = [];
    batch.add('task:result', () => { ran.push('result'); return {}; }, () => {});
    batch.join('server:canary', () => { ran.push('canary'); }, (err) => landed.push(err?.message ?? null));
    batch.join('server:check', () => { throw new AppError('NOT_FOUND', 'no such task'); }, (err) => landed.push(err?.message ?? null));
    await nextTurn();
    expect(ran).toEqual(['result', 'canary']);
    expect(transactions).toBe(1);
    expect(landed).toEqual([null, 'no such task']);

    const failing = new TickBatch(fakeStore({ fail: true }), pino({ level: 'silent' }));
    failing.join('server:canary', () => {}, (err) => landed.push(err?.message ?? null));
    await nextTurn();
    expect(landed[2]).toBe('internal error');
  });

  it('answers as before without an observer', async () => {
    const batch = new TickBatch(fakeStore(), pino({ level: 'silent' }));
    const replies: unknown[] = [];
    batch.add('work:request', () => ({ n: 1 }), (r) => replies.push(r));
    await nextTurn();
    expect(replies).toEqual([{ ok: true, n: 1 }]);
  });

  it('on an engine that commits without waiting, answers and sends only once the commit is known, and nothing of a failed one', async () => {
    const pending: ((err: Error | null) => void)[] = [];
    const store = Object.assign(fakeStore(), {
      transactionThen<T>(fn: () => T, done: (err: Error | null) => void): T {
        const out = fn();
        pending.push(done);
        return out;
      },
    }) as Store;
    const batch = new TickBatch(store, pino({ level: 'silent' }));
    const replies: unknown[] = [];
    const sent: string[] = [];
    batch.add('task:result', () => { batch.afterCommit(() => sent.push('task pushed')); return { n: 1 }; }, (r) => replies.push(r));
    await nextTurn();
    expect(pending).toHaveLength(1);
    expect(replies).toEqual([]);
    expect(sent).toEqual([]);
    pending.shift()!(null);
    expect(sent).toEqual(['task pushed']);
    expect(replies).toEqual([{ ok: true, n: 1 }]);

    batch.add('task:result', () => { batch.afterCommit(() => sent.push('another')); return { n: 2 }; }, (r) => replies.push(r));
    await nextTurn();
    pending.shift()!(new Error('the connection was lost'));
    expect(sent).toEqual(['task pushed']);
    expect(replies[1]).toMatchObject({ ok: false, error: { code: 'INTERNAL' } });
  });
});

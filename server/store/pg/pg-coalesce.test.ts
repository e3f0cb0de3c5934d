import { describe, expect, it } from 'vitest';
import { coalesce } from './pg-coalesce.js';
import { REPLICA, patchStatement } from './pg-columns.js';
import type { Statement } from './pg-sync.js';

const output = (id: string, n: number): Statement => ({
  text: 'INSERT INTO replica_outputs (replica_id, data) VALUES ($1, $2) ON CONFLICT (replica_id) DO UPDATE SET data = excluded.data',
  values: [id, new Uint8Array([n])],
});
const add = (id: string, valid: number): Statement => ({ text: 'UPDATE volunteers SET valid = valid + $2, streak = $3 WHERE id = $1', values: [id, valid, 7] });

describe('coalesce', () => {
  it('makes one INSERT of many rows from a run of the same INSERT, numbering the values on', () => {
    const { statements, upTo } = coalesce([{ text: 'BEGIN' }, output('r1', 1), output('r2', 2), output('r3', 3), { text: 'COMMIT' }], 5);
    expect(upTo).toBe(3);
    expect(statements[1]).toEqual({
      text: 'INSERT INTO replica_outputs (replica_id, data) VALUES ($1, $2), ($3, $4), ($5, $6) ON CONFLICT (replica_id) DO UPDATE SET data = excluded.data',
      values: ['r1', new Uint8Array([1]), 'r2', new Uint8Array([2]), 'r3', new Uint8Array([3])],
    });
    expect(statements.map((s) => s.text.split(' ')[0])).toEqual(['BEGIN', 'INSERT', 'COMMIT']);
  });

  it('starts a new INSERT where a conflict key comes again under DO UPDATE (a key may be touched once per statement)', () => {
    const { statements } = coalesce([output('r1', 1), output('r2', 2), output('r1', 3)], 3);
    expect(statements.map((s) => s.values!.length)).toEqual([4, 2]);
  });

  it('keeps a constant in the VALUES row and a multi-line conflict clause', () => {
    const text = `INSERT INTO task_results (task_id, replica_id, data) VALUES ($1, $2, NULL)
        ON CONFLICT (task_id) DO UPDATE SET replica_id = excluded.replica_id, data = NULL`;
    const { statements } = coalesce([{ text, values: ['t1', 'r1'] }, { text, values: ['t2', 'r2'] }], 2);
    expect(statements).toHaveLength(1);
    expect(statements[0]!.text).toContain('VALUES ($1, $2, NULL), ($3, $4, NULL)\n        ON CONFLICT (task_id) DO UPDATE');
  });

  it('makes one UPDATE ... FROM (VALUES ...) of a run of the same UPDATE, adding where the statement added', () => {
    const { statements } = coalesce([add('v1', 1), add('v2', 2)], 2);
    expect(statements).toEqual([{
      text: 'UPDATE volunteers AS t SET valid = t.valid + v.valid, streak = v.streak FROM (VALUES ((NULL::volunteers).id, '
        + '(NULL::volunteers).valid, (NULL::volunteers).streak), ($1, $2, $3), ($4, $5, $6)) AS v(id, valid, streak) WHERE t.id = v.id',
      values: ['v1', 1, 7, 'v2', 2, 7],
    }]);
  });

  it('starts a new UPDATE where an id comes again, and leaves apart what differs, what is past upTo and what it cannot read', () => {
    const task = (id: string, status: string) => patchStatement('tasks', id, { status, doneAt: 5 })!;
    const other = { text: 'UPDATE slices s SET done = false FROM tasks t WHERE t.id = $1', values: ['t1'] };
    const list = [task('t1', 'done'), task('t1', 'failed'), task('t2', 'done'), other, task('t3', 'done'), task('t4', 'done'), add('v1', 1), add('v1', 1)];
    const { statements, upTo } = coalesce(list, 7);
    expect(statements.map((s) => s.values!.length)).toEqual([3, 6, 1, 6, 3, 3]);
    expect(upTo).toBe(5);
    expect(statements[5]).toBe(list[7]);
  });

  it('leaves alone an INSERT whose conflict key is not a value sent, and a row insert of the replicas table merges', () => {
    const text = 'INSERT INTO sites (origin, credit, tasks) VALUES ($1, $2, 1) ON CONFLICT (tasks) DO UPDATE SET credit = excluded.credit';
    expect(coalesce([{ text, values: ['a', 1] }, { text, values: ['b', 1] }], 2).statements).toHaveLength(2);
    const replica = (id: string) => REPLICA.insert({
      id, taskId: 't', jobId: 'j', workerId: 'w', volunteerId: 'v', status: 'returned', workerClass: '-', single: false, site: null,
      leasedAt: 1, leaseExpires: 2, backend: 'cpu', runMs: 1, error: null, returnedAt: 2, origin: null,
    });
    expect(coalesce([replica('a'), replica('b')], 2).statements).toHaveLength(1);
  });

  it('merges a turn\'s writes one result after another into one statement per table, and moves none past a write to its table', () => {
    const task = (id: string) => patchStatement('tasks', id, { status: 'done', doneAt: 5 })!;
    const result = (id: string) => [output(`r-${id}`, 1), task(`t-${id}`), add('v1', 1)];
    // Three results, each touching three tables; the volunteer's counter comes back for each.
    const { statements } = coalesce([{ text: 'BEGIN' }, ...result('a'), ...result('b'), ...result('c')], 10);
    expect(statements.map((s) => [s.text.split(' ').slice(0, 3).join(' '), s.values?.length ?? 0])).toEqual([
      ['BEGIN', 0], ['INSERT INTO replica_outputs', 6], ['UPDATE tasks AS', 9], ['UPDATE volunteers SET', 3], ['UPDATE volunteers SET', 3],
      ['UPDATE volunteers SET', 3],
    ]);
    // Another write to the tasks table between two of the same text: the later one stays after it.
    const other = patchStatement('tasks', 't-x', { wanted: 2 })!;
    const kept = coalesce([task('t1'), output('r1', 1), other, output('r2', 2), task('t2')], 5).statements;
    expect(kept.map((s) => s.text.split(' ').slice(0, 2).join(' '))).toEqual(['UPDATE tasks', 'INSERT INTO', 'UPDATE tasks', 'UPDATE tasks']);
    expect(kept[1]!.values).toEqual(['r1', new Uint8Array([1]), 'r2', new Uint8Array([2])]);
    expect(kept.slice(2).map((s) => s.values)).toEqual([other.values, task('t2').values]);
  });
});

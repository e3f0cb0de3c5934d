/**
 * Column lists for PostgreSQL reads, each column aliased to its field name, so a row comes back as the Store's row
 * type with nothing to convert (booleans are booleans, int8 numbers, jsonb parsed: pg-sync.ts); and the values of
 * a row for an INSERT in the same order.
 */
import type { Statement } from './pg-sync.js';

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The fields of a row type as one table stores them. */
export class Columns<K extends string> {
  /** Column names, in field order. */
  readonly names: string;

  constructor(readonly table: string, readonly fields: readonly K[], private readonly json: readonly K[] = []) {
    this.names = fields.map(snake).join(', ');
  }

  /** The SELECT list: `alias.col AS "field"`, ... */
  select(alias = ''): string {
    const p = alias ? `${alias}.` : '';
    return this.fields.map((f) => `${p}${snake(f)} AS "${f}"`).join(', ');
  }

  /** INSERT of one row; `tail` goes after VALUES (an ON CONFLICT clause). */
  insert(row: Record<K, unknown>, tail = ''): Statement {
    const values = this.fields.map((f) => (this.json.includes(f) ? JSON.stringify(row[f]) : row[f] ?? null));
    return { text: `INSERT INTO ${this.table} (${this.names}) VALUES (${values.map((_, k) => `$${k + 1}`).join(', ')}) ${tail}`, values };
  }
}

/** UPDATE setting the fields `patch` names (undefined ones left alone); null when it names none. */
export function patchStatement(table: string, id: string, patch: Record<string, unknown>): Statement | null {
  const keys = Object.keys(patch).filter((k) => patch[k] !== undefined);
  if (keys.length === 0) return null;
  return {
    text: `UPDATE ${table} SET ${keys.map((k, i) => `${snake(k)} = $${i + 2}`).join(', ')} WHERE id = $1`,
    values: [id, ...keys.map((k) => patch[k])],
  };
}

export { snake };

export const API_KEY = new Columns('api_keys', ['id', 'keyHash', 'name', 'admin', 'createdAt', 'revokedAt', 'weight']);
export const MODEL = new Columns('models', ['hash', 'size', 'inputs', 'outputs', 'opsets', 'weightBytes', 'largestWeight', 'createdAt'],
  ['inputs', 'outputs', 'opsets']);
export const DATASET = new Columns('datasets', ['hash', 'dtype', 'shape', 'dataOffset', 'size', 'createdAt'], ['shape']);
export const VOLUNTEER = new Columns('volunteers',
  ['id', 'name', 'team', 'valid', 'invalid', 'errors', 'streak', 'canaryPassed', 'canaryFailed', 'credit', 'quarantinedAt', 'createdAt']);
export const JOB = new Columns('jobs', ['id', 'owner', 'name', 'model', 'stageModels', 'inputs', 'items', 'batchSize', 'replicas', 'maxReplicas',
  'rtol', 'atol', 'priority', 'adaptive', 'canaryRate', 'status', 'error', 'createdAt', 'finishedAt', 'keepReplicaOutputs'], ['stageModels', 'inputs']);
export const TASK = new Columns('tasks', ['id', 'jobId', 'stage', 'model', 'batch', 'itemStart', 'itemEnd', 'status', 'canary', 'ready', 'readyAt',
  'wanted', 'active', 'failures', 'error', 'doneAt', 'tainted']);
export const REPLICA = new Columns('replicas', ['id', 'taskId', 'jobId', 'workerId', 'volunteerId', 'status', 'workerClass', 'single', 'site',
  'leasedAt', 'leaseExpires', 'backend', 'runMs', 'error', 'returnedAt', 'origin']);

/** The Postgres array type of each task column, for inserting many tasks through unnest(). */
export const TASK_ARRAY_TYPES: Record<string, string> = {
  id: 'text', jobId: 'text', stage: 'int4', model: 'text', batch: 'int4', itemStart: 'int8', itemEnd: 'int8', status: 'text', canary: 'bool',
  ready: 'bool', readyAt: 'int8', wanted: 'int4', active: 'int4', failures: 'int4', error: 'text', doneAt: 'int8', tainted: 'bool',
};

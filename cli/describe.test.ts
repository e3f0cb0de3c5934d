import { describe, expect, it } from 'vitest';
import type { JobView } from '../shared/protocol.js';
import { describeJob, keyTable } from './describe.js';

const job = (patch: Partial<JobView>): JobView => ({
  id: 'job-1', name: null, status: 'completed', model: 'm', items: 4, batchSize: 2, replicas: 2, maxReplicas: 5, rtol: 1e-3, atol: 1e-4,
  priority: 0, adaptive: true, canaryRate: 0, createdAt: 0, finishedAt: 1, error: null,
  tasks: { total: 2, done: 2, failed: 0, pending: 0, running: 0, canaries: 0 }, replicasIssued: 4,
  outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 3] }], stages: [], failures: [], tainted: 0, ...patch,
});

/** What a terminal would act on: ESC, other C0/C1 controls, bidi overrides and isolates. */
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe('describeJob', () => {
  it('shows volunteers\' error texts and names escaped, never as escape sequences or bidi overrides', () => {
    const text = describeJob(job({
      status: 'failed', name: 'evil\u202ename',
      error: 'please re-run at https://x.example \x1b[2J\x1b[31mred\x07',
      failures: [{ taskId: 't', stage: 0, batch: 3, reason: 'boom\r\x1b]8;;https://x.example\x1b\\link\u2066' }],
    }));
    expect(text).not.toMatch(UNSAFE);
    expect(text).toContain('error: please re-run at https://x.example \\u001b[2J\\u001b[31mred\\u0007');
    expect(text).toContain('batch 3 failed: boom\\u000d\\u001b]8;;https://x.example\\u001b\\link\\u2066');
    expect(text).toContain('(evil\\u202ename)');
  });

  it('says how many tasks are tainted and how to recompute them, only when there are some', () => {
    expect(describeJob(job({ tainted: 3 }))).toContain('3 tasks tainted (accepted with a volunteer since quarantined): run `tabgrid rerun job-1 --tainted`');
    expect(describeJob(job({ tainted: 1 }))).toContain('1 task tainted');
    expect(describeJob(job({}))).not.toContain('tainted');
  });
});

describe('keyTable', () => {
  it('lists keys in aligned columns with role and revocation, names escaped', () => {
    const table = keyTable([
      { id: 'key-aaaaaaaaaaaa', name: 'admin', admin: true, createdAt: Date.UTC(2025, 0, 2, 3, 4), revokedAt: null, weight: 1 },
      { id: 'key-bbbbbbbbbbbb', name: 'bob\x1b[8m', admin: false, createdAt: Date.UTC(2025, 0, 3), revokedAt: Date.UTC(2025, 0, 4, 5, 6), weight: 2.5 },
    ]).split('\n');
    expect(table[0]).toMatch(/^ID\s+NAME\s+ROLE\s+WEIGHT\s+CREATED \(UTC\)\s+REVOKED \(UTC\)$/);
    expect(table[1]).toMatch(/^key-aaaaaaaaaaaa\s+admin\s+admin\s+1\s+2025-01-02 03:04\s+-$/);
    expect(table[2]).toMatch(/^key-bbbbbbbbbbbb\s+bob\\u001b\[8m\s+researcher\s+2\.5\s+2025-01-03 00:00\s+2025-01-04 05:06$/);
    expect(table[1].indexOf('admin')).toBe(table[2].indexOf('bob'));
  });
});

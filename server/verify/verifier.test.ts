import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../shared/tensor.js';
import { decide } from './verifier.js';

const out = (v: number): Tensor[] => [{ name: 'y', dtype: 'float32', dims: [2], data: new Uint8Array(Float32Array.from([v, v]).buffer) }];
const rep = (id: string, v: number, vouches = true) => ({ id, outputs: out(v), vouches });
const policy = { quorum: 2, maxReplicas: 4, rtol: 1e-3, atol: 1e-4 };

describe('decide', () => {
  it('waits until a quorum is back', () => {
    expect(decide([rep('a', 1)], 2, 1, policy)).toMatchObject({ verdict: 'wait' });
  });

  it('accepts when a quorum agrees within tolerance, and reports each comparison', () => {
    const d = decide([rep('a', 1), rep('b', 1.0001)], 2, 0, policy);
    expect(d).toMatchObject({ verdict: 'accept', replicaId: 'a', agreeing: ['a', 'b'], disagreeing: [] });
    expect(d.pairs).toEqual([{ a: 'a', b: 'b', agree: true }]);
  });

  it('asks for one more replica on disagreement, then accepts the majority', () => {
    const two = [rep('a', 1), rep('b', 5)];
    expect(decide(two, 2, 0, policy)).toMatchObject({ verdict: 'more' });
    const three = [...two, rep('c', 5)];
    expect(decide(three, 3, 0, policy)).toMatchObject({ verdict: 'accept', replicaId: 'b', agreeing: ['b', 'c'], disagreeing: ['a'] });
  });

  it('does not let agreeing newcomers carry a task without a vetted member', () => {
    const colluders = [rep('x', 9, false), rep('y', 9, false)];
    expect(decide(colluders, 2, 0, policy)).toMatchObject({ verdict: 'more', detail: expect.stringContaining('vetted') });
    expect(decide([...colluders, rep('h', 1), rep('i', 1)], 4, 0, policy)).toMatchObject({ verdict: 'accept', replicaId: 'h' });
    expect(decide([...colluders, rep('h', 1), rep('z', 3)], 4, 0, policy)).toMatchObject({ verdict: 'wait', trustPending: true });
  });

  it('waits for replicas in flight before giving up', () => {
    expect(decide([rep('a', 1), rep('b', 5)], 3, 1, policy)).toMatchObject({ verdict: 'wait' });
  });

  it('fails at the replica cap', () => {
    const d = decide([1, 2, 3, 4].map((v) => rep(`r${v}`, v)), 4, 0, policy);
    expect(d.verdict).toBe('fail');
    expect(d.verdict === 'fail' && d.detail).toMatch(/no 2 of 4 replicas agree/);
  });

  it('accepts a single replica when the quorum is one', () => {
    expect(decide([rep('a', 1)], 1, 0, { ...policy, quorum: 1 })).toMatchObject({ verdict: 'accept' });
  });
});

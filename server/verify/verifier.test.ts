import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../shared/tensor.js';
import { decide } from './verifier.js';

const out = (v: number): Tensor[] => [{ name: 'y', dtype: 'float32', dims: [2], data: new Uint8Array(Float32Array.from([v, v]).buffer) }];
const policy = { quorum: 2, maxReplicas: 4, rtol: 1e-3, atol: 1e-4 };

describe('decide', () => {
  it('waits until a quorum is back', () => {
    expect(decide([{ id: 'a', outputs: out(1) }], 2, 1, policy)).toEqual({ verdict: 'wait' });
  });

  it('accepts when a quorum agrees within tolerance', () => {
    const d = decide([{ id: 'a', outputs: out(1) }, { id: 'b', outputs: out(1.0001) }], 2, 0, policy);
    expect(d).toMatchObject({ verdict: 'accept', replicaId: 'a', agreeing: ['a', 'b'] });
  });

  it('asks for one more replica on disagreement, then accepts the majority', () => {
    const two = [{ id: 'a', outputs: out(1) }, { id: 'b', outputs: out(5) }];
    expect(decide(two, 2, 0, policy)).toMatchObject({ verdict: 'more' });
    const three = [...two, { id: 'c', outputs: out(5) }];
    expect(decide(three, 3, 0, policy)).toMatchObject({ verdict: 'accept', replicaId: 'b', agreeing: ['b', 'c'] });
  });

  it('waits for replicas in flight before giving up', () => {
    expect(decide([{ id: 'a', outputs: out(1) }, { id: 'b', outputs: out(5) }], 3, 1, policy)).toEqual({ verdict: 'wait' });
  });

  it('fails at the replica cap', () => {
    const all = [1, 2, 3, 4].map((v) => ({ id: `r${v}`, outputs: out(v) }));
    const d = decide(all, 4, 0, policy);
    expect(d.verdict).toBe('fail');
    expect(d.verdict === 'fail' && d.detail).toMatch(/no 2 of 4 replicas agree/);
  });

  it('accepts a single replica when the quorum is one', () => {
    expect(decide([{ id: 'a', outputs: out(1) }], 1, 0, { ...policy, quorum: 1 })).toMatchObject({ verdict: 'accept' });
  });
});

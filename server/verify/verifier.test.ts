import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../shared/tensor.js';
import { decide } from './verifier.js';

const out = (v: number): Tensor[] => [{ name: 'y', dtype: 'float32', dims: [2], data: new Uint8Array(Float32Array.from([v, v]).buffer) }];
/** Each replica from an origin of its own unless one is named. */
const rep = (id: string, v: number, vouches = true, origin: string | null = null) => ({ id, outputs: out(v), vouches, origin });
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

  it('does not let agreeing newcomers carry a task without a vetted member: the server decides', () => {
    const colluders = [rep('x', 9, false), rep('y', 9, false)];
    expect(decide(colluders, 2, 0, policy)).toMatchObject({ verdict: 'check', detail: expect.stringContaining('vetted') });
    expect(decide([...colluders, rep('h', 1), rep('i', 1)], 4, 0, policy)).toMatchObject({ verdict: 'accept', replicaId: 'h' });
  });

  it('does not let vetted identities behind one origin form a quorum: the server decides', () => {
    const crowd = ['a', 'b', 'c'].map((id) => rep(id, 9, true, '10.0.0.1'));
    expect(decide(crowd.slice(0, 2), 2, 0, policy)).toMatchObject({ verdict: 'check', detail: expect.stringContaining('one network origin') });
    // ...and does not wait for a replica still out: a hoarder's lease must not hold the task.
    expect(decide(crowd, 3, 1, policy)).toMatchObject({ verdict: 'check' });
    // An honest pair on two other origins outvotes the crowd.
    const honest = [rep('h', 1, true, '10.0.0.2'), rep('i', 1, false, '10.0.0.3')];
    expect(decide([...crowd, ...honest], 5, 0, policy)).toMatchObject({ verdict: 'accept', replicaId: 'h', agreeing: ['h', 'i'] });
    // One vetted volunteer's two tabs on one origin do not either.
    expect(decide([rep('h', 1, true, '10.0.0.2'), rep('h2', 1, true, '10.0.0.2')], 2, 0, policy)).toMatchObject({ verdict: 'check' });
  });

  it('waits for replicas in flight before giving up', () => {
    expect(decide([rep('a', 1), rep('b', 5)], 3, 1, policy)).toMatchObject({ verdict: 'wait' });
  });

  it('hands the task to the server\'s own run at the replica cap, never fails it on volunteers\' word', () => {
    const d = decide([1, 2, 3, 4].map((v) => rep(`r${v}`, v)), 4, 0, policy);
    expect(d.verdict).toBe('check');
    expect(d.verdict === 'check' && d.detail).toMatch(/no 2 of 4 replicas agree/);
  });

  it('checks unvouched replicas at once while no vetted volunteer is online, without waiting for the rest', () => {
    expect(decide([rep('a', 1, false)], 2, 1, { ...policy, checkUnvouched: true })).toMatchObject({ verdict: 'check' });
    expect(decide([rep('a', 1, false)], 2, 1, policy)).toMatchObject({ verdict: 'wait' });
    expect(decide([rep('a', 1, true)], 2, 1, { ...policy, checkUnvouched: true })).toMatchObject({ verdict: 'wait' });
  });

  it('accepts a single replica when the quorum is one', () => {
    expect(decide([rep('a', 1)], 1, 0, { ...policy, quorum: 1 })).toMatchObject({ verdict: 'accept' });
  });
});

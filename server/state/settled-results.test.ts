import { describe, expect, it } from 'vitest';
import { SettledResults } from './settled-results.js';

describe('SettledResults', () => {
  it('keeps what a transaction staged only once it commits, and lets the oldest go past its bound', () => {
    const r = new SettledResults(10);
    r.stage('j-s0-t0', new Uint8Array(4));
    expect(r.get('j-s0-t0')).toBeUndefined();
    r.committed();
    expect(r.get('j-s0-t0')?.byteLength).toBe(4);
    r.stage('j-s0-t1', new Uint8Array(4));
    r.abandoned();
    expect(r.get('j-s0-t1')).toBeUndefined();
    r.keep('j-s0-t2', new Uint8Array(4));
    r.keep('k-s0-t0', new Uint8Array(4));
    expect(r.get('j-s0-t0')).toBeUndefined();
    expect(r.get('j-s0-t2')).toBeDefined();
    r.forgetJob('j');
    expect(r.get('j-s0-t2')).toBeUndefined();
    expect(r.get('k-s0-t0')).toBeDefined();
  });

  it('forgets a kept result as soon as a transaction changes it', () => {
    const r = new SettledResults();
    r.keep('t', new Uint8Array([1]));
    r.stage('t', undefined);
    expect(r.get('t')).toBeUndefined();
    r.committed();
    expect(r.get('t')).toBeUndefined();
  });
});

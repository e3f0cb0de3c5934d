import { describe, expect, it } from 'vitest';
import { formatMs, isBackend, pickFaster } from './backend-choice.js';

describe('backend choice', () => {
  it('picks the faster backend and says by how much, naming the adapter', () => {
    const c = pickFaster([{ backend: 'wasm', ms: 41.2 }, { backend: 'webgpu', ms: 2390.4 }], 'software adapter swiftshader');
    expect(c).toEqual({ backend: 'wasm', reason: 'wasm: 41 ms vs webgpu 2,390 ms on software adapter swiftshader' });
  });

  it('lets WebGPU win when it is faster', () => {
    const c = pickFaster([{ backend: 'wasm', ms: 120 }, { backend: 'webgpu', ms: 3.25 }], 'GPU ampere (nvidia)');
    expect(c).toEqual({ backend: 'webgpu', reason: 'webgpu: 3.3 ms on GPU ampere (nvidia) vs wasm 120 ms' });
  });

  it('falls back to the backend that worked, and reports the failure', () => {
    const c = pickFaster([{ backend: 'wasm', ms: 50 }, { backend: 'webgpu', error: 'unsupported op' }]);
    expect(c).toEqual({ backend: 'wasm', reason: 'wasm: 50 ms vs webgpu failed (unsupported op)' });
  });

  it('returns null when every backend failed', () => {
    expect(pickFaster([{ backend: 'wasm', error: 'x' }, { backend: 'webgpu', error: 'y' }])).toBeNull();
  });

  it('formats durations and knows its backends', () => {
    expect(formatMs(3.74)).toBe('3.7 ms');
    expect(formatMs(12345.6)).toBe('12,346 ms');
    expect(isBackend('wasm')).toBe(true);
    expect(isBackend('webgl')).toBe(false);
    expect(isBackend(null)).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { readPageOptions } from './page-options.js';

describe('page options', () => {
  it('starts nothing by default', () => {
    expect(readPageOptions('')).toEqual({ autostart: false });
  });

  it('reads autostart and a forced backend', () => {
    expect(readPageOptions('?autostart=1&backend=wasm')).toEqual({ autostart: true, backend: 'wasm' });
    expect(readPageOptions('?backend=webgpu')).toEqual({ autostart: false, backend: 'webgpu' });
    expect(readPageOptions('?autostart=0')).toEqual({ autostart: false });
  });

  it('reports an unknown backend instead of ignoring it silently', () => {
    expect(readPageOptions('?backend=webgl')).toEqual({ autostart: false, unknownBackend: 'webgl' });
  });
});

describe('page options: throttle', () => {
  it('reads a default share of GPU time, clamped to 5..100', () => {
    expect(readPageOptions('?throttle=40')).toEqual({ autostart: false, throttle: 40 });
    expect(readPageOptions('?throttle=0')).toEqual({ autostart: false, throttle: 5 });
    expect(readPageOptions('?throttle=abc')).toEqual({ autostart: false });
  });
});

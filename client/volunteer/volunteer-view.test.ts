import { describe, expect, it } from 'vitest';
import { formatDuration, warmText } from './volunteer-view.js';

describe('formatDuration', () => {
  it('reads naturally from milliseconds to hours', () => {
    expect(formatDuration(0)).toBe('0 s');
    expect(formatDuration(620)).toBe('0.6 s');
    expect(formatDuration(42_400)).toBe('42 s');
    expect(formatDuration(252_000)).toBe('4 min 12 s');
    expect(formatDuration(3_780_000)).toBe('1 h 03 min');
  });
});

describe('warmText', () => {
  it('says how many models are kept ready for interactive requests', () => {
    expect(warmText(0)).toMatch(/none kept ready now$/);
    expect(warmText(1)).toMatch(/; 1 model kept ready for them now$/);
    expect(warmText(3)).toMatch(/; 3 models kept ready for them now$/);
  });
});

import { describe, expect, it } from 'vitest';
import { formatDuration, interactiveText } from './volunteer-view.js';

describe('formatDuration', () => {
  it('reads naturally from milliseconds to hours', () => {
    expect(formatDuration(0)).toBe('0 s');
    expect(formatDuration(620)).toBe('0.6 s');
    expect(formatDuration(42_400)).toBe('42 s');
    expect(formatDuration(252_000)).toBe('4 min 12 s');
    expect(formatDuration(3_780_000)).toBe('1 h 03 min');
  });
});

describe('interactiveText', () => {
  it('says how many interactive requests were served, failed, and how many models are kept ready', () => {
    expect(interactiveText({ interactiveServed: 0, interactiveFailed: 0, interactiveWarm: [] })).toBe('0 served');
    expect(interactiveText({ interactiveServed: 1204, interactiveFailed: 2, interactiveWarm: ['a'] })).toBe('1,204 served (2 failed), 1 model kept ready');
    expect(interactiveText({ interactiveServed: 3, interactiveFailed: 0, interactiveWarm: ['a', 'b'] })).toBe('3 served, 2 models kept ready');
  });
});

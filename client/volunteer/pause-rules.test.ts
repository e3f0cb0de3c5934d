import { describe, expect, it } from 'vitest';
import { batteryPause, describePause } from './pause-rules.js';

describe('battery pause with hysteresis', () => {
  it('stops below 20% on battery and resumes only at 30% or on charge', () => {
    let paused = false;
    const walk = (level: number, charging = false) => (paused = batteryPause(paused, { level, charging }));
    expect(walk(0.5)).toBe(false);
    expect(walk(0.21)).toBe(false);
    expect(walk(0.19)).toBe(true);
    expect(walk(0.22)).toBe(true); // above the stop level, below the resume level: still paused
    expect(walk(0.29)).toBe(true);
    expect(walk(0.3)).toBe(false);
    expect(walk(0.19)).toBe(true);
    expect(walk(0.05, true)).toBe(false); // plugged in
  });
});

describe('describePause', () => {
  it('lists every reason in words', () => {
    expect(describePause([])).toBeNull();
    expect(describePause(['hidden'])).toBe('Paused: this tab is hidden.');
    expect(describePause(['hidden', 'battery'])).toBe('Paused: this tab is hidden and the battery is low.');
  });
});

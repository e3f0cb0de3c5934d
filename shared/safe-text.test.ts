import { describe, expect, it } from 'vitest';
import { safeText } from './safe-text.js';

describe('safeText', () => {
  it('writes terminal escapes and bidi overrides as visible escapes', () => {
    expect(safeText('\x1b[2J\x1b[31mred\u202Eevil\u2066')).toBe('\\u001b[2J\\u001b[31mred\\u202eevil\\u2066');
    expect(safeText('line\nbreak\ttab')).toBe('line\\u000abreak\\u0009tab');
  });

  it('leaves ordinary text, accents and emoji alone, and cuts long text', () => {
    expect(safeText('déjà vu — ok ✓')).toBe('déjà vu — ok ✓');
    expect(safeText('x'.repeat(10), 4)).toBe('xxxx…');
  });
});

import { describe, expect, it } from 'vitest';
import { givenImageFlags, parseImageOptions } from './image-options.js';

describe('parseImageOptions', () => {
  it('reads sizes, layouts, fractions and per-channel lists', () => {
    expect(parseImageOptions({ resize: '224x160', layout: 'nhwc', scale: '1/255', mean: '0.485, 0.456,0.406', std: '0.229,0.224,0.225' })).toEqual({
      resize: { width: 224, height: 160 }, layout: 'nhwc', scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
    });
    expect(parseImageOptions({ scale: '0.5', mean: '127.5', resize: '32X32' })).toEqual({ scale: 0.5, mean: [127.5], resize: { width: 32, height: 32 } });
    expect(parseImageOptions({})).toEqual({});
  });

  it.each([
    [{ resize: '224' }, '--resize: expected WIDTHxHEIGHT, e.g. 224x224'],
    [{ resize: '0x10' }, '--resize: each side from 1 to 16384 pixels'],
    [{ layout: 'chw' }, '--layout: expected nchw or nhwc'],
    [{ scale: '1/0' }, '--scale: expected a positive number or fraction'],
    [{ scale: 'abc' }, '--scale: expected a positive number or fraction'],
    [{ mean: '0.5,,0.4' }, '--mean: expected numbers separated by commas'],
    [{ std: '0.2,0' }, '--std: every value must be above 0'],
  ])('refuses %j with the flag and what it expects', (flags, message) => {
    expect(() => parseImageOptions(flags)).toThrow(message);
  });

  it('names the flags given', () => {
    expect(givenImageFlags(parseImageOptions({ scale: '2', std: '3' }))).toEqual(['--std', '--scale']);
  });
});

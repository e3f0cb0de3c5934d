import { describe, expect, it } from 'vitest';
import { embeddingOrigin } from './embed-origin.js';
import { frameUrl, isFrameMessage, readFrameOptions, readWidgetOptions } from './widget-options.js';

describe('widget options', () => {
  it('reads the data attributes, with defaults for missing or unknown values', () => {
    expect(readWidgetOptions({})).toEqual({ theme: 'auto', throttle: 50, placement: 'bottom-right' });
    expect(readWidgetOptions({ theme: 'dark', throttle: '30', placement: 'inline' })).toEqual({ theme: 'dark', throttle: 30, placement: 'inline' });
    expect(readWidgetOptions({ theme: 'purple', throttle: '900', placement: 'middle', backend: 'webgl' })).toEqual({ theme: 'auto', throttle: 100, placement: 'bottom-right' });
    expect(readWidgetOptions({ backend: 'wasm' })).toMatchObject({ backend: 'wasm' });
  });

  it('passes theme and throttle to the frame through its address', () => {
    const url = frameUrl('https://grid.example', { theme: 'dark', throttle: 25, placement: 'inline' });
    expect(url).toBe('https://grid.example/widget/frame?theme=dark&throttle=25');
    expect(readFrameOptions(new URL(url).search)).toEqual({ theme: 'dark', throttle: 25 });
    expect(frameUrl('https://grid.example', { theme: 'auto', throttle: 50, placement: 'inline', backend: 'wasm' })).toContain('&backend=wasm');
  });

  it('accepts only well-formed size messages', () => {
    expect(isFrameMessage({ type: 'tabgrid:size', width: 300, height: 120 })).toBe(true);
    expect(isFrameMessage({ type: 'tabgrid:size', height: 'tall' })).toBe(false);
    expect(isFrameMessage(null)).toBe(false);
  });
});

describe('embedding origin', () => {
  const self = 'https://grid.example';
  it('prefers ancestorOrigins, then the referrer origin', () => {
    expect(embeddingOrigin(['https://news.example'], 'https://other.example/x', self)).toBe('https://news.example');
    expect(embeddingOrigin(undefined, 'https://news.example/article?id=3', self)).toBe('https://news.example');
    expect(embeddingOrigin([], '', self)).toBeNull();
  });

  it('is null when opened directly or from the server itself', () => {
    expect(embeddingOrigin([self], '', self)).toBeNull();
    expect(embeddingOrigin(undefined, `${self}/`, self)).toBeNull();
    expect(embeddingOrigin(['null'], 'file:///tmp/x.html', self)).toBeNull();
  });
});

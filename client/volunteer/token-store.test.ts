import { describe, expect, it } from 'vitest';
import { TOKEN_KEY, createTokenStore } from './token-store.js';

class MemoryStorage implements Storage {
  private readonly m = new Map<string, string>();
  get length() { return this.m.size; }
  clear() { this.m.clear(); }
  getItem(k: string) { return this.m.get(k) ?? null; }
  key(i: number) { return [...this.m.keys()][i] ?? null; }
  removeItem(k: string) { this.m.delete(k); }
  setItem(k: string, v: string) { this.m.set(k, v); }
}

describe('token store', () => {
  it('keeps the token in localStorage under tabgrid.token', () => {
    const storage = new MemoryStorage();
    createTokenStore(storage).set('t-123');
    expect(storage.getItem(TOKEN_KEY)).toBe('t-123');
    const again = createTokenStore(storage);
    expect(again.persistent).toBe(true);
    expect(again.get()).toBe('t-123');
  });

  it('keeps it in memory when storage throws (blocked third-party storage)', () => {
    const refusing = new MemoryStorage();
    refusing.getItem = () => { throw new DOMException('denied', 'SecurityError'); };
    refusing.setItem = () => { throw new DOMException('denied', 'SecurityError'); };
    const store = createTokenStore(refusing);
    expect(store.get()).toBeNull();
    store.set('t-456');
    expect(store.get()).toBe('t-456');
  });

  it('works with no storage at all', () => {
    const store = createTokenStore(null);
    expect(store.persistent).toBe(false);
    store.set('t-789');
    expect(store.get()).toBe('t-789');
  });
});

describe('token store adopting storage granted later', () => {
  it('prefers a token kept from an earlier visit, else saves this visit\'s', () => {
    const old = new MemoryStorage();
    old.setItem(TOKEN_KEY, 't-old');
    const store = createTokenStore(null);
    store.set('t-visit');
    store.adopt(old);
    expect(store.persistent).toBe(true);
    expect(store.get()).toBe('t-old');

    const fresh = new MemoryStorage();
    const other = createTokenStore(null);
    other.set('t-visit');
    other.adopt(fresh);
    expect(fresh.getItem(TOKEN_KEY)).toBe('t-visit');
  });
});

import { describe, expect, it } from 'vitest';
import { CONSENT_KEY, ConsentStore, usableStorage, widgetConsentKey } from './consent-store.js';

class MemoryStorage implements Storage {
  private readonly m = new Map<string, string>();
  get length() { return this.m.size; }
  clear() { this.m.clear(); }
  getItem(k: string) { return this.m.get(k) ?? null; }
  key(i: number) { return [...this.m.keys()][i] ?? null; }
  removeItem(k: string) { this.m.delete(k); }
  setItem(k: string, v: string) { this.m.set(k, v); }
}

const defaults = { throttle: 50, pauseWhenHidden: true };

describe('consent store', () => {
  it('remembers the opt-in and the settings across visits; Stop forgets the opt-in only', () => {
    const storage = new MemoryStorage();
    const first = new ConsentStore(storage, CONSENT_KEY, defaults);
    expect(first.get()).toEqual({ ...defaults, consentAt: null });
    first.remember({ throttle: 30, pauseWhenHidden: false }, 1234);
    const again = new ConsentStore(storage, CONSENT_KEY, defaults);
    expect(again.get()).toEqual({ throttle: 30, pauseWhenHidden: false, consentAt: 1234 });
    again.forget();
    expect(new ConsentStore(storage, CONSENT_KEY, defaults).get()).toEqual({ throttle: 30, pauseWhenHidden: false, consentAt: null });
  });

  it('keeps one record per embedding site', () => {
    const storage = new MemoryStorage();
    new ConsentStore(storage, widgetConsentKey('https://a.example'), defaults).remember(defaults, 1);
    expect(new ConsentStore(storage, widgetConsentKey('https://b.example'), defaults).get().consentAt).toBeNull();
    expect(new ConsentStore(storage, widgetConsentKey('https://a.example'), defaults).get().consentAt).toBe(1);
  });

  it('clamps a stored throttle and ignores a corrupt record', () => {
    const storage = new MemoryStorage();
    storage.setItem(CONSENT_KEY, JSON.stringify({ throttle: 400, consentAt: 'yesterday' }));
    expect(new ConsentStore(storage, CONSENT_KEY, defaults).get()).toEqual({ throttle: 100, pauseWhenHidden: true, consentAt: null });
    storage.setItem(CONSENT_KEY, '{not json');
    expect(new ConsentStore(storage, CONSENT_KEY, defaults).get().consentAt).toBeNull();
  });

  it('lives in memory without storage, and moves to storage granted later', () => {
    const store = new ConsentStore(null, CONSENT_KEY, defaults);
    expect(store.persistent).toBe(false);
    store.remember(defaults, 99);
    const granted = new MemoryStorage();
    store.adopt(granted);
    expect(store.persistent).toBe(true);
    expect(JSON.parse(granted.getItem(CONSENT_KEY)!)).toMatchObject({ consentAt: 99 });
  });

  it('finds storage unusable when it throws', () => {
    expect(usableStorage(() => { throw new DOMException('denied', 'SecurityError'); })).toBeNull();
    expect(usableStorage(() => new MemoryStorage())).not.toBeNull();
  });
});

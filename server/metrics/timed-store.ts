/**
 * The durable store with its writes timed, for the store-write latency histogram. A Proxy rather than a class
 * that lists every method: the Store interface grows (store/ is another module's), and a method added there
 * must keep working here without an edit. Reads and transactions pass through untouched; the memory in front
 * of the store (state/live-store.ts) writes only changed rows, at the end of each turn, so what is timed here is
 * the store's own cost.
 */
import { performance } from 'node:perf_hooks';
import type { Store } from '../store/store.js';

/** Store methods that write: named for what they do (insert, update, set, ...), plus `volunteerFor`, which may insert. */
export const isWrite = (name: string): boolean =>
  /^(insert|update|set|put|create|clear|record|credit|revoke|delete|remove|purge|drop)[A-Z]/.test(name) || name === 'volunteerFor';

/** `store` with each write reported to `observe` (operation name, seconds). */
export function timedWrites(store: Store, observe: (op: string, seconds: number) => void, now: () => number = () => performance.now()): Store {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      const cached = wrapped.get(prop);
      if (cached) return cached;
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      const out = typeof prop === 'string' && isWrite(prop)
        ? (...args: unknown[]) => {
            const started = now();
            try {
              return fn.apply(target, args);
            } finally {
              observe(prop, (now() - started) / 1000);
            }
          }
        : fn.bind(target);
      wrapped.set(prop, out);
      return out;
    },
  });
}

/**
 * Keeps the volunteer token (the server-issued identity that credits their work) across visits.
 * localStorage throws in sandboxed or cross-site frames and when storage is blocked; then the token
 * lives in memory for this visit only, and the server issues a fresh one next time.
 */

export const TOKEN_KEY = 'tabgrid.token';

export interface TokenStore {
  get(): string | null;
  set(token: string): void;
  /** True when the token survives a reload (localStorage works). */
  readonly persistent: boolean;
  /**
   * Moves to storage that became usable later (the Storage Access API granted it): a token kept there from
   * an earlier visit is the lasting identity and is used from the next connection on; else this visit's is saved.
   */
  adopt(storage: Storage): void;
}

function usableLocalStorage(): Storage | null {
  try {
    const s = globalThis.localStorage;
    if (!s) return null;
    s.getItem(TOKEN_KEY); // access alone can throw SecurityError
    return s;
  } catch {
    return null;
  }
}

/** A token store on localStorage when it works, else in memory. */
export function createTokenStore(initial: Storage | null = usableLocalStorage()): TokenStore {
  let memory: string | null = null;
  let storage = initial;
  return {
    get persistent() { return storage !== null; },
    get() {
      try { return storage?.getItem(TOKEN_KEY) ?? memory; } catch { return memory; }
    },
    set(token) {
      memory = token;
      try { storage?.setItem(TOKEN_KEY, token); } catch { /* quota or revoked: memory still has it */ }
    },
    adopt(next) {
      storage = next;
      let kept: string | null = null;
      try { kept = next.getItem(TOKEN_KEY); } catch { /* unreadable after all: keep memory */ }
      if (kept) memory = kept;
      else if (memory) this.set(memory);
    },
  };
}

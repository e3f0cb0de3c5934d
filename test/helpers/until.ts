/**
 * What the integration tests wait with: a condition polled until it holds (an event seen, a count reached), and a
 * runner that never answers, so its worker holds what it leased.
 */
import type { Runner } from '../../client/net/work-loop-options.js';

/** Resolves once `cond()` holds; throws past `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 20_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A runner that never answers: its worker holds what it leased. */
export const holding = (): Runner => ({ run: () => new Promise(() => {}) });

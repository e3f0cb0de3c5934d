/**
 * The clock and timers a WorkLoop uses: the system's, or fakes in tests.
 */

export interface LoopTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Runs `fn` after what is queued now (a macrotask), without a timer's minimum delay. */
  later(fn: () => void): void;
}

/** A macrotask: setImmediate in Node, a MessageChannel message in browsers (setTimeout(0) can wait 4 ms there). */
function later(fn: () => void): void {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
  if (g.setImmediate) { g.setImmediate(fn); return; }
  // Typed loosely: this file is also compiled for Node, whose MessagePort type has no onmessage.
  const channel = new MessageChannel() as unknown as { port1: { onmessage: (() => void) | null; close(): void }; port2: { postMessage(v: unknown): void } };
  channel.port1.onmessage = () => { channel.port1.close(); fn(); };
  channel.port2.postMessage(null);
}

export const systemTimers: LoopTimers = {
  now: () => globalThis.performance?.now() ?? Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  later,
};

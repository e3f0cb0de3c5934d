/**
 * One request answered through a socket.io acknowledgement, as a promise: resolved with the answer's body when it
 * says ok, rejected with its error message otherwise, or when no answer comes within `timeoutMs`.
 */
import type { AckResponse } from '../../shared/protocol.js';
import type { LoopTimers } from './loop-timers.js';

export function withAck<T extends object>(timers: LoopTimers, timeoutMs: number, send: (ack: (res: AckResponse<T>) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = timers.setTimeout(() => reject(new Error('the server did not answer')), timeoutMs);
    send((res) => {
      timers.clearTimeout(timer);
      if (res.ok) resolve(res); else reject(new Error(res.error.message));
    });
  });
}

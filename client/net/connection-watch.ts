/**
 * What a worker does when a connection attempt fails: a refused one is asked again after a while, and after
 * FAILOVER_ATTEMPTS in a row that could not reach the server at all, the worker gives that server up for the next
 * one it knows of (server-rotation.ts).
 */
import type { LoopTimers } from './loop-timers.js';
import type { WorkerSocket } from './open-worker-socket.js';

/**
 * Failed attempts in a row after which a worker with another server to go to moves on. socket.io retries a lost
 * connection after about 1 s, then 2 s more (each ±50%), so a server is given up some 1.5 to 4.5 s after it went
 * away (about 1 s when it was never reached at all). Moving early costs little: the leases went with the
 * connection anyway (the server hands them back on disconnect, and another server hands the tasks out again),
 * and the network's servers share one database, so the volunteer's credit follows it. Waiting longer only idles
 * the worker; a server back from a restart is reached again when its turn comes round.
 */
export const FAILOVER_ATTEMPTS = 2;
/** socket.io retries a lost connection by itself, not one the server refused (e.g. too many from this network). */
export const REFUSED_RETRY_MS = 30_000;

export interface ConnectionWatch {
  timers: LoopTimers;
  /** Whether `socket` is still the worker's connection (not stopped, not given up). */
  current(): boolean;
  /** The server cannot be reached: move to the next one (a no-op where there is none). */
  giveUp(): void;
  report(error: string): void;
}

/**
 * Watches `socket`'s connection attempts. A refusal (the server's middleware said no: too many connections from
 * this network) does not count towards giving the server up: it is there and answering, and is asked again later.
 */
export function watchConnection(socket: WorkerSocket, w: ConnectionWatch): void {
  let failed = 0;
  socket.on('connect', () => { failed = 0; });
  socket.on('connect_error', (err) => {
    w.report(`cannot reach server: ${err.message}`);
    if (socket.active === false) {
      w.timers.setTimeout(() => { if (w.current() && !socket.connected) socket.connect(); }, REFUSED_RETRY_MS);
      return;
    }
    if (++failed >= FAILOVER_ATTEMPTS) w.giveUp();
  });
}

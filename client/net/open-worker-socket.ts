/**
 * Opens a worker's socket to the server: websocket first (long-polling as the fallback), socket.io's parser
 * with room for a message's tasks (socket-parser.ts), and, in Node, a local address to leave from.
 */
import { type ManagerOptions, type Socket, type SocketOptions, io } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/protocol.js';
import { clientParser } from './socket-parser.js';

export type WorkerSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface WorkerSocketOptions {
  /**
   * The local address the connection leaves from (Node only: a machine with several interfaces, or tests that
   * give each worker its own loopback address, 127.0.0.2, 127.0.0.3, ...). ws hands `localAddress` to the TCP
   * connection; engine.io-client's long-polling does not, so a bound worker speaks websocket only rather than
   * fall back to a connection from another address.
   */
  bind?: string;
}

type Transport = Partial<ManagerOptions & SocketOptions> & { localAddress?: string };

/**
 * The transports for a connection to `url` from a page at `pageOrigin` (undefined outside a browser). A page
 * reaching another server of the network (its own went away) speaks websocket only: long-polling there would be a
 * cross-origin request, which the servers do not allow (no CORS), while a WebSocket handshake is not subject to it.
 */
export function transportFor(url: string, pageOrigin: string | undefined, bind?: string): Transport {
  if (bind) return { transports: ['websocket'], localAddress: bind };
  const crossOrigin = pageOrigin !== undefined && new URL(url, pageOrigin).origin !== pageOrigin;
  return { transports: crossOrigin ? ['websocket'] : ['websocket', 'polling'] };
}

export function openWorkerSocket(url: string, o: WorkerSocketOptions = {}): WorkerSocket {
  // Typed loosely: this file is also compiled for Node, which has no `location`.
  const page = (globalThis as { location?: { origin?: string } }).location?.origin;
  return io(url, { ...transportFor(url, page, o.bind), parser: clientParser });
}

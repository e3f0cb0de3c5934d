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

export function openWorkerSocket(url: string, o: WorkerSocketOptions = {}): WorkerSocket {
  const transport: Partial<ManagerOptions & SocketOptions> & { localAddress?: string } = o.bind
    ? { transports: ['websocket'], localAddress: o.bind }
    : { transports: ['websocket', 'polling'] };
  return io(url, { ...transport, parser: clientParser });
}

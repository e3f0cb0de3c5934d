/**
 * Opens a worker's socket to the server: websocket first (long-polling as the fallback), socket.io's parser
 * with room for a message's tasks (socket-parser.ts), and, in Node, a local address to leave from.
 */
import { nextTick, transports } from 'engine.io-client';
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

type Corkable = { cork(): void; uncork(): void };

/**
 * The websocket transport, writing the frames of one message to the connection at once. socket.io sends a message
 * with binary parts (every task:result, whose outputs are attachments) as several websocket frames, handed to the
 * transport a process.nextTick apart; ws writes each frame to its TCP socket by itself, a system call and a TCP
 * segment each. Corking the socket until that tick's end writes them in one (the bytes on the wire are the same).
 * The drain that hands over the next frame is scheduled by `super.write` with the same nextTick, so it runs first.
 * In Node only: a browser's WebSocket has no TCP socket to reach (`_socket` is ws's, as engine.io-client's autoUnref uses it).
 */
class CorkedWebSocket extends transports.websocket {
  private corked = false;

  override write(packets: Parameters<InstanceType<typeof transports.websocket>['write']>[0]): void {
    const tcp = (this.ws as { _socket?: Corkable } | null)?._socket;
    const cork = tcp !== undefined && !this.corked;
    if (cork) { this.corked = true; tcp.cork(); }
    super.write(packets);
    if (cork) nextTick(() => { this.corked = false; tcp.uncork(); }, this.setTimeoutFn);
  }
}

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
  const t = transportFor(url, page, o.bind);
  const implementations = t.transports!.map((name) => (name === 'websocket' ? CorkedWebSocket : transports[name as keyof typeof transports]));
  return io(url, { ...t, transports: implementations, parser: clientParser });
}

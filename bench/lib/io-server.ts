/**
 * A socket.io server for a bench child process, configured as TabGrid's is (same maxHttpBufferSize, no
 * client serving): listens on a free loopback port, tells the parent which, and stops on SIGTERM or SIGINT.
 */
import http from 'node:http';
import { Server, type Socket } from 'socket.io';
import { serveParent, tellParent } from './proc.js';

export function serveIo(onConnection: (socket: Socket) => void): void {
  const server = http.createServer();
  const io = new Server(server, { maxHttpBufferSize: 64 * 2 ** 20, serveClient: false });
  io.on('connection', onConnection);
  server.listen(0, '127.0.0.1', () => {
    tellParent({ type: 'ready', port: (server.address() as { port: number }).port });
  });
  serveParent({});
  const stop = () => { io.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/**
 * The transport's limit: a bare socket.io server, configured as TabGrid's is, that acknowledges each
 * message at once with an ack the size of TabGrid's result ack. Run as a child of bench/dispatch.ts.
 */
import http from 'node:http';
import { Server } from 'socket.io';
import { serveParent, tellParent } from './proc.js';

const server = http.createServer();
const io = new Server(server, { maxHttpBufferSize: 64 * 2 ** 20, serveClient: false });
io.on('connection', (socket) => {
  socket.on('echo', (_msg: unknown, ack: unknown) => {
    if (typeof ack === 'function') ack({ ok: true, accepted: true });
  });
});
server.listen(0, '127.0.0.1', () => {
  tellParent({ type: 'ready', port: (server.address() as { port: number }).port });
});
serveParent({});
const stop = () => { io.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

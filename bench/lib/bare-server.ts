/**
 * The transport's limit: a bare socket.io server, configured as TabGrid's is, that acknowledges each
 * message at once with an ack the size of TabGrid's result ack. Run as a child of bench/dispatch.ts.
 */
import { serveIo } from './io-server.js';

serveIo((socket) => {
  socket.on('echo', (_msg: unknown, ack: unknown) => {
    if (typeof ack === 'function') ack({ ok: true, accepted: true });
  });
});

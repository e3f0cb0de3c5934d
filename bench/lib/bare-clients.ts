/**
 * Load for the bare socket.io server: `clients` connections, each keeping `inflight` messages of
 * `bytes` binary bytes awaiting their ack, for as long as the parent lets it run. Counts acks.
 */
import { io, type Socket } from 'socket.io-client';
import { type Msg, serveParent } from './proc.js';

let acked = 0;
let running = false;
const sockets: Socket[] = [];

async function start(m: Msg): Promise<object> {
  const { url, clients, inflight, bytes } = m as unknown as { url: string; clients: number; inflight: number; bytes: number };
  const payload = Buffer.alloc(bytes, 7);
  await Promise.all(Array.from({ length: clients }, () => new Promise<void>((resolve, reject) => {
    const s = io(url, { transports: ['websocket'], reconnection: false, forceNew: true });
    sockets.push(s);
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  })));
  running = true;
  let seq = 0;
  for (const s of sockets) {
    for (let k = 0; k < inflight; k++) {
      const send = () => {
        if (!running) return;
        s.emit('echo', { replicaId: `r-${(seq++).toString(16).padStart(16, '0')}`, data: payload }, () => { acked++; send(); });
      };
      send();
    }
  }
  return { connected: sockets.length };
}

serveParent({
  start,
  mark: () => ({ count: acked, t: performance.timeOrigin + performance.now() }),
  stop: () => {
    running = false;
    for (const s of sockets) s.disconnect();
    return {};
  },
});

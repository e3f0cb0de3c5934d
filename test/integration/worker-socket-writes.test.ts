/**
 * A worker's message with binary parts (a task:result: one websocket frame of JSON, one per output) leaves in one
 * write to its TCP connection rather than one per frame, and arrives byte for byte; the connection is left
 * uncorked, so the next message goes out too. Against a bare socket.io server on port 0.
 */
import { createServer } from 'node:http';
import type { AddressInfo, Socket as TcpSocket } from 'node:net';
import { Server } from 'socket.io';
import { afterEach, describe, expect, it } from 'vitest';
import { type WorkerSocket, openWorkerSocket } from '../../client/net/open-worker-socket.js';
import type { TaskResult } from '../../shared/protocol.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A socket.io server that keeps every task:result it is sent and acknowledges it. */
async function resultSink(): Promise<{ url: string; received: TaskResult[] }> {
  const http = createServer();
  const io = new Server(http);
  const received: TaskResult[] = [];
  io.on('connection', (s) => s.on('task:result', (r: TaskResult, ack: (a: unknown) => void) => {
    received.push(r);
    ack({ ok: true, accepted: true });
  }));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise((r) => io.close(() => r(null))));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, received };
}

/** Counts the writes the connection under `socket` hands to the operating system. */
function countWrites(socket: WorkerSocket): { n: number } {
  const tcp = (socket.io.engine.transport as unknown as { ws: { _socket: TcpSocket & Record<'_write' | '_writev', (...a: unknown[]) => void> } }).ws._socket;
  const count = { n: 0 };
  for (const m of ['_write', '_writev'] as const) {
    const original = tcp[m];
    tcp[m] = function (this: TcpSocket, ...a: unknown[]) { count.n++; return original.apply(this, a); };
  }
  return count;
}

const result = (replicaId: string, seed: number): TaskResult => ({
  replicaId, backend: 'cpu', runMs: 1.5,
  outputs: [
    { name: 'y', dtype: 'float32', dims: [2, 3], data: new Uint8Array(new Float32Array([1, 2, 3, 4, 5, seed]).buffer) },
    { name: 'z', dtype: 'uint8', dims: [5], data: Uint8Array.from([seed, 0, 255, 7, 9]) },
  ],
});

describe('a worker socket writing a result', () => {
  it('sends its frames in one write, bytes intact, and leaves the connection writable', async () => {
    const { url, received } = await resultSink();
    const socket = openWorkerSocket(url);
    cleanup.push(() => socket.disconnect());
    await new Promise<void>((r) => socket.once('connect', () => r()));
    expect(socket.io.engine.transport.name).toBe('websocket');
    const writes = countWrites(socket);

    for (const [i, id] of ['r-1', 'r-2'].entries()) {
      const before = writes.n;
      const ack = await new Promise((r) => socket.emit('task:result', result(id, 40 + i), r));
      expect(ack).toEqual({ ok: true, accepted: true });
      expect(writes.n - before).toBe(1);
    }
    expect(received.map((r) => r.replicaId)).toEqual(['r-1', 'r-2']);
    for (const [i, r] of received.entries()) {
      const sent = result(r.replicaId, 40 + i);
      expect(r.outputs.map((t) => ({ ...t, data: Buffer.from(t.data as Uint8Array) })))
        .toEqual(sent.outputs.map((t) => ({ ...t, data: Buffer.from(t.data as Uint8Array) })));
    }
  });
});

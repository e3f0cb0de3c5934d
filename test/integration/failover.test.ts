/**
 * Workers find another server when theirs goes away, on real servers and real sockets: a headless worker given
 * `A,B` (in-process, and as the `tabgrid worker` command) works on A, and when A stops it moves to B with the same
 * token and completes a job submitted there. A server names its peers in the hello's ack (`peers`), and a worker
 * told of B by A moves to B the same way. The two servers here have separate stores; in a network they share one.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Server } from 'socket.io';
import { io } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { NodeRunner } from '../../cli/node-runner.js';
import { clientParser } from '../../client/net/socket-parser.js';
import { type LoopStatus, WorkLoop } from '../../client/net/work-loop.js';
import { serverParser } from '../../server/api/socket-parser.js';
import { TickBatch } from '../../server/api/tick-batch.js';
import { type TabGridIo, type WorkerSocketDeps, attachWorkerSockets } from '../../server/api/worker-socket.js';
import { configSchema } from '../../server/config.js';
import { AppEvents } from '../../server/events.js';
import { systemClock } from '../../server/scheduler/clock.js';
import { writeNpy } from '../../shared/npy.js';
import type { AckResponse, HelloAccepted } from '../../shared/protocol.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/tabgrid.js');
const cleanup: (() => unknown)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c(); });

/** A real server; closing it early (the server that goes away) is allowed, the cleanup then does nothing more. */
async function server(): Promise<TestServer & { stop(): Promise<void> }> {
  const s = await startTestServer();
  let closed: Promise<void> | null = null;
  const stop = () => (closed ??= s.close());
  cleanup.push(stop);
  return { ...s, stop };
}

/** Resolves with the id of the next worker to say hello to `s`. */
const joined = (s: TestServer) => new Promise<string>((resolve) => s.app.events.once('worker:joined', resolve));

/** Runs a small job on `s` and resolves once it has completed (a worker must be there to do it). */
async function completesJob(s: TestServer): Promise<void> {
  const api = new ApiClient(s.url, s.apiKey);
  const m = await api.uploadModel(mlpModel(4, 8, 3, 5));
  const ds = await api.uploadDataset(writeNpy('float32', [3, 4], floatData(3, 12)));
  const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 1, canaryRate: 0 });
  expect((await api.waitJob(job.id, undefined, 100)).status).toBe('completed');
}

/** A headless worker as cli/worker.ts builds it, recording the tokens it was given and the servers it gave up. */
function headless(urls: string[]) {
  const tokens: string[] = [];
  const switches: string[] = [];
  let onStatus: (s: LoopStatus) => void = () => {};
  const loop = new WorkLoop({
    serverUrl: urls[0]!, servers: urls.slice(1), slots: 1, runner: new NodeRunner(), hello: { kind: 'node', backends: ['cpu'] },
    onToken: (t) => tokens.push(t), onSwitch: (from, to) => switches.push(`${from} -> ${to}`), onStatus: (s) => onStatus(s),
  });
  cleanup.push(() => loop.stop());
  /** Resolves when the worker's status first satisfies `test`. */
  const until = (test: (s: LoopStatus) => boolean) => new Promise<LoopStatus>((resolve) => {
    if (test(loop.status)) { resolve({ ...loop.status }); return; }
    onStatus = (s) => { if (test(s)) resolve(s); };
  });
  return { loop, tokens, switches, until };
}

/**
 * The socket layer alone (attachWorkerSockets) with a stand-in scheduler and store: enough to answer a hello,
 * with `peers` as a network's server would pass it.
 */
async function helloServer(peers?: () => string[]): Promise<{ url: string; stop(): Promise<void> }> {
  const httpServer = http.createServer();
  const ioServer: TabGridIo = new Server(httpServer, { serveClient: false, parser: serverParser });
  const scheduler = {
    workerTable: new Map(), connect: () => {}, disconnect: () => {}, setEvents: () => {}, requestWork: () => [], release: () => 0,
  };
  const store = { volunteerFor: (_hash: string, id: string) => ({ id }), transaction: <T>(fn: () => T) => fn() } as unknown as WorkerSocketDeps['store'];
  const log = pino({ level: 'silent' });
  const events = new AppEvents();
  attachWorkerSockets({
    io: ioServer, clock: systemClock, log, events, config: configSchema.parse({}), batch: new TickBatch(store, log, events),
    scheduler: scheduler as unknown as WorkerSocketDeps['scheduler'], store,
    siteTokens: { verify: () => null } as unknown as WorkerSocketDeps['siteTokens'], peers,
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  let closed: Promise<void> | null = null;
  const stop = () => (closed ??= new Promise<void>((resolve) => ioServer.close(() => resolve())));
  cleanup.push(stop);
  return { url: `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`, stop };
}

/** A plain socket.io client's hello, and the server's answer to it. */
async function hello(url: string): Promise<AckResponse<HelloAccepted>> {
  const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, parser: clientParser });
  cleanup.push(() => s.disconnect());
  return s.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] }) as Promise<AckResponse<HelloAccepted>>;
}

describe('a worker given several servers', () => {
  it('works on the first; when it stops, moves to the next with the same token and completes a job there', async () => {
    const [a, b] = await Promise.all([server(), server()]);
    const onA = joined(a);
    const w = headless([a.url, b.url]);
    w.loop.start();
    await onA;
    await w.until((s) => s.connected);
    const onB = joined(b);
    await a.stop();
    await onB;
    expect(w.switches).toEqual([`${a.url} -> ${b.url}`]);
    await completesJob(b);
    expect(w.loop.status.tasksDone).toBeGreaterThan(0);
    // The token A issued went along: B was asked for that volunteer, not for a new one.
    expect(new Set(w.tokens).size).toBe(1);
    expect(w.tokens.length).toBeGreaterThanOrEqual(2);
  });

  it('`tabgrid worker --server A,B` says when it gives A up, and works for B', async () => {
    const [a, b] = await Promise.all([server(), server()]);
    const onA = joined(a);
    const proc = spawn(process.execPath, [BIN, 'worker', '--server', `${a.url},${b.url}`, '--ephemeral'], { stdio: ['ignore', 'ignore', 'pipe'] });
    cleanup.push(() => { proc.kill('SIGTERM'); });
    let said = '';
    const saysSwitch = new Promise<void>((resolve) => {
      proc.stderr.on('data', (d: Buffer) => { said += d.toString(); if (said.includes(`server ${a.url} unreachable; trying ${b.url}`)) resolve(); });
    });
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`the worker exited (${code}): ${said}`))));
    await Promise.race([onA, exited]);
    const onB = joined(b);
    await a.stop();
    await Promise.race([Promise.all([onB, saysSwitch]), exited]);
    await Promise.race([completesJob(b), exited]);
  });
});

describe('servers named in the hello\'s ack', () => {
  it('are the peers a server is given; with none, the ack has no `servers`', async () => {
    expect(await hello((await helloServer(() => ['http://peer-1.example', 'https://peer-2.example'])).url))
      .toMatchObject({ ok: true, servers: ['http://peer-1.example', 'https://peer-2.example'] });
    for (const peers of [undefined, () => []]) {
      const res = await hello((await helloServer(peers)).url);
      expect(res.ok).toBe(true);
      expect(res).not.toHaveProperty('servers');
    }
    const plain = await hello((await server()).url);
    expect(plain.ok).toBe(true);
    expect(plain).not.toHaveProperty('servers');
  });

  it('reach the worker, join its rotation, and are where it goes when its server stops', async () => {
    const b = await server();
    const a = await helloServer(() => [b.url]);
    const w = headless([a.url]);
    w.loop.start();
    await w.until((s) => s.connected);
    expect(w.loop.servers).toEqual([a.url, b.url]);
    const onB = joined(b);
    await a.stop();
    await onB;
    expect(w.switches).toEqual([`${a.url} -> ${b.url}`]);
    await completesJob(b);
  });
});

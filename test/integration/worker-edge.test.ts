/**
 * The worker socket's edge against anonymous clients, on a real server and real socket.io clients: the small
 * message limit until hello, bounded hello fields, per-socket event rates, per-origin connection limits, the
 * network origin a worker is counted under (its bound local address, or the proxy's forwarded address), and
 * site credit only on a site token the server signed.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Socket, io } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { NodeRunner } from '../../cli/node-runner.js';
import { clientParser } from '../../client/net/socket-parser.js';
import { WorkLoop } from '../../client/net/work-loop.js';
import { SiteTokens } from '../../server/auth/site-tokens.js';
import type { Config } from '../../server/config.js';
import { systemClock } from '../../server/scheduler/clock.js';
import { writeNpy } from '../../shared/npy.js';
import type { AckResponse, WorkerHello } from '../../shared/protocol.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { loopbacks, startWorkers } from '../helpers/workers.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/tabgrid.js');
const HELLO: WorkerHello = { kind: 'node', backends: ['cpu'] };

type Ack = AckResponse<Record<string, unknown>>;
const cleanup: (() => unknown)[] = [];
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c(); });

async function server(config: Partial<Config> = {}): Promise<TestServer> {
  const s = await startTestServer({ config });
  cleanup.push(() => s.close());
  return s;
}

/** A plain socket.io client, no reconnection, optionally from a given local address or with extra headers. */
function client(url: string, o: { bind?: string; headers?: Record<string, string>; transport?: 'websocket' | 'polling' } = {}): Socket {
  const s = io(url, {
    transports: [o.transport ?? 'websocket'], forceNew: true, reconnection: false, parser: clientParser,
    ...(o.bind ? { localAddress: o.bind } : {}), ...(o.headers ? { extraHeaders: o.headers } : {}),
  });
  cleanup.push(() => s.disconnect());
  return s;
}

/** Resolves when the socket connects, rejects with the server's refusal. */
function connected(s: Socket): Promise<Socket> {
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}

const ask = (s: Socket, event: string, payload: unknown) => s.emitWithAck(event, payload) as Promise<Ack>;
const disconnected = (s: Socket) => new Promise<string>((r) => s.once('disconnect', r));
const bigResult = (bytes: number) => ({
  replicaId: 'r-none', backend: 'cpu', runMs: 1, outputs: [{ name: 'y', dtype: 'uint8', dims: [bytes], data: new Uint8Array(bytes) }],
});

describe('worker connections before and after hello', () => {
  it.each(['websocket', 'polling'] as const)('drops a connection that sends a large message before its hello, without decoding it (%s); after hello the limit lifts', async (transport) => {
    const { url } = await server({ preHelloMaxBytes: 16 * 1024 });
    const s = await connected(client(url, { transport }));
    // Small and before hello: decoded and refused.
    expect(await ask(s, 'work:request', { slots: 1 })).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    // 64 KiB before hello: the connection closes, and the event never reaches a handler (no ack, not even a refusal).
    const first = await Promise.race([
      disconnected(s).then((reason) => ({ disconnected: reason })),
      ask(s, 'task:result', bigResult(64 * 1024)).then((ack) => ({ answered: ack })),
    ]);
    expect(first).toEqual({ disconnected: 'transport close' });

    const greeted = await connected(client(url, { transport }));
    expect(await ask(greeted, 'worker:hello', HELLO)).toMatchObject({ ok: true });
    const res = await ask(greeted, 'task:result', bigResult(64 * 1024));
    expect(res).toMatchObject({ ok: false });
    expect(res.ok === false && res.error.code).not.toBe('UNAUTHORIZED');
    expect(greeted.connected).toBe(true);
  });

  it('bounds the hello: at most 32 finite limits and 64 cached models; a huge limits object never gets parsed', async () => {
    const { url } = await server();
    const s = await connected(client(url));
    const limits = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`limit${i}`, i]));
    const hash = (i: number) => i.toString(16).padStart(64, '0');
    expect(await ask(s, 'worker:hello', { ...HELLO, limits: limits(33) })).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
    expect(await ask(s, 'worker:hello', { ...HELLO, limits: { maxBufferSize: null } })).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
    expect(await ask(s, 'worker:hello', { ...HELLO, cached: Array.from({ length: 65 }, (_, i) => hash(i)) }))
      .toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
    expect(await ask(s, 'worker:hello', { ...HELLO, limits: limits(32), cached: Array.from({ length: 64 }, (_, i) => hash(i)) }))
      .toMatchObject({ ok: true });

    // 200,000 keys (the 72 MB finding): far over the pre-hello limit, so the connection closes before any parsing.
    const flood = await connected(client(url));
    const gone = disconnected(flood);
    flood.emit('worker:hello', { ...HELLO, limits: limits(200_000) }, () => {});
    expect(await gone).toBe('transport close');
  });

  it('answers events over the rate RATE_LIMITED without running them, and drops a connection that keeps flooding', async () => {
    const { url } = await server({ socketEventsPerSecond: 5 });
    const s = await connected(client(url));
    expect(await ask(s, 'worker:hello', HELLO)).toMatchObject({ ok: true });
    // A burst of 10 is allowed (the hello took one); of 12 more at once, the last few are refused.
    const acks = await Promise.all(Array.from({ length: 12 }, () => ask(s, 'volunteer:stats', {})));
    const ok = acks.filter((a) => a.ok).length;
    const limited = acks.filter((a) => !a.ok && a.error.code === 'RATE_LIMITED').length;
    expect(ok + limited).toBe(12);
    expect(ok).toBeGreaterThanOrEqual(9);
    expect(limited).toBeGreaterThanOrEqual(1);
    // Refused events ran nothing: the ok ones carry stats, the refused ones only the error.
    expect(acks.filter((a) => !a.ok).every((a) => !('stats' in a))).toBe(true);

    const gone = disconnected(s);
    for (let i = 0; i < 100; i++) s.emit('volunteer:stats', {}, () => {});
    expect(await gone).toBe('io server disconnect');
  });

  it('refuses connections beyond the limit from one network origin, not from another, and admits again when one closes', async () => {
    const { url, app } = await server({ maxConnectionsPerOrigin: 2 });
    const a = await connected(client(url));
    await connected(client(url));
    await expect(connected(client(url))).rejects.toThrow(/too many connections from your network/);
    // Another origin (another loopback address) is not affected.
    await connected(client(url, { bind: '127.0.0.2' }));

    expect(await ask(a, 'worker:hello', HELLO)).toMatchObject({ ok: true });
    const left = new Promise((r) => app.events.once('worker:left', r));
    a.disconnect();
    await left;
    await connected(client(url));
  });
});

describe('network origins', () => {
  it('sees workers bound to 127.0.0.2 and 127.0.0.3 as two origins, and records each in the worker table', async () => {
    const { url, app } = await server();
    const joined = new Promise<void>((resolve) => {
      let n = 0;
      app.events.on('worker:joined', () => { if (++n === 2) resolve(); });
    });
    const workers = startWorkers(url, 2, 1, { bind: loopbacks });
    cleanup.push(() => workers.stop());
    await joined;
    expect([...app.workers.values()].map((w) => w.origin).sort()).toEqual(['127.0.0.2', '127.0.0.3']);
  });

  it('`tabgrid worker --bind` connects from the address given', async () => {
    const { url, app } = await server();
    const joined = new Promise<string>((r) => app.events.once('worker:joined', r));
    const proc = spawn(process.execPath, [BIN, 'worker', '--server', url, '--ephemeral', '--bind', '127.0.0.4'], { stdio: 'ignore' });
    cleanup.push(() => { proc.kill('SIGTERM'); });
    const exited = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`the worker exited (${code})`))));
    const workerId = await Promise.race([joined, exited]);
    expect(app.workers.get(workerId)?.origin).toBe('127.0.0.4');
  });

  it('behind a trusted proxy takes the right-most X-Forwarded-For address, widened to /24 when configured', async () => {
    const { url, app } = await server({ trustProxy: true, ipv4OriginPrefix: 24 });
    const s = await connected(client(url, { headers: { 'x-forwarded-for': '10.9.9.9, 203.0.113.77' } }));
    const hello = await ask(s, 'worker:hello', HELLO);
    expect(app.workers.get(String(hello.ok && hello.workerId))?.origin).toBe('203.0.113.0/24');

    const { url: direct, app: directApp } = await server();
    const d = await connected(client(direct, { headers: { 'x-forwarded-for': '203.0.113.77' } }));
    const dh = await ask(d, 'worker:hello', HELLO);
    expect(directApp.workers.get(String(dh.ok && dh.workerId))?.origin).toBe('127.0.0.1');
  });
});

describe('site credit', () => {
  it('credits a site only on a token the server signed; a site named in the hello, or a forged token, gets nothing', async () => {
    const s = await server();
    const api = new ApiClient(s.url, s.apiKey);
    const m = await api.uploadModel(mlpModel(4, 8, 3, 5));
    const ds = await api.uploadDataset(writeNpy('float32', [6, 4], floatData(3, 24)));
    const runJob = async () => {
      const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 1, canaryRate: 0 });
      expect((await api.waitJob(job.id, undefined, 100)).status).toBe('completed');
    };
    const sites = async () => {
      const board = await (await fetch(`${s.url}/api/v1/leaderboard`)).json() as { sites: { origin: string; tasks: number }[] };
      return board.sites;
    };
    const worker = (extra: Partial<WorkerHello>) => {
      const loop = new WorkLoop({ serverUrl: s.url, slots: 1, runner: new NodeRunner(), hello: { ...HELLO, ...extra } });
      cleanup.push(() => loop.stop());
      loop.start();
      return loop;
    };
    // Signed with the key the server keeps in its data folder, as /widget.js does.
    const real = new SiteTokens({ dataDir: s.dataDir, clock: systemClock }).issue('https://news.example');
    const [payload] = real.split('.');

    const liars = [worker({ site: 'https://forged.example' }), worker({ siteToken: `${payload}.${'A'.repeat(43)}` })];
    await runJob();
    expect([...s.app.workers.values()].map((w) => w.site)).toEqual([null, null]);
    expect(await sites()).toEqual([]);

    for (const l of liars) l.stop();
    worker({ siteToken: real });
    await runJob();
    expect([...s.app.workers.values()].map((w) => w.site)).toEqual(['https://news.example']);
    expect(await sites()).toEqual([expect.objectContaining({ origin: 'https://news.example', tasks: 6 })]);
  });
});

/**
 * The trust rules across servers on one database: a volunteer quarantined by one server is quarantined by the
 * others at once (they hear of it through the adapter): its leases there are withdrawn and it gets no more work,
 * although their memory held its record from before. A network origin's connections count against its cap over
 * every server.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { WorkLoop } from '../../client/net/work-loop.js';
import { writeNpy } from '../../shared/npy.js';
import { io as connect, type Socket } from 'socket.io-client';
import { floatData, mlpModel } from '../helpers/models.js';
import { havePostgres } from '../helpers/pg-cluster.js';
import { serversOnOneDatabase } from '../helpers/pg-servers.js';
import type { TestServer } from '../helpers/server.js';
import { holding, until } from '../helpers/until.js';

const KEY = 'scale-out-trust-admin-key';

describe.skipIf(!havePostgres())('trust across servers on one database', () => {
  const servers = serversOnOneDatabase(2, { apiKey: KEY, maxConnectionsPerOrigin: 4 });
  const loops: WorkLoop[] = [];
  const sockets: Socket[] = [];
  afterAll(() => {
    for (const s of sockets) s.disconnect();
    for (const l of loops) l.stop();
  });

  it('withdraws a volunteer\'s leases on every server when one quarantines it', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const api = new ApiClient(a.url, KEY);
    const m = await api.uploadModel(mlpModel(4, 8, 3, 3));
    const d = await api.uploadDataset(writeNpy('float32', [4000, 4], floatData(3, 16000)));
    await api.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, replicas: 1 });
    // One volunteer (one token), a worker on each server, both holding leases.
    let token = '';
    const onA = new WorkLoop({ serverUrl: a.url, slots: 2, runner: holding(), hello: { kind: 'node', backends: ['cpu'] }, onToken: (t) => { token = t; } });
    loops.push(onA);
    onA.start();
    await until(() => onA.status.volunteerId !== null && token !== '');
    const volunteerId = onA.status.volunteerId!;
    const onB = new WorkLoop({ serverUrl: b.url, slots: 2, runner: holding(), token, hello: { kind: 'node', backends: ['cpu'] } });
    loops.push(onB);
    onB.start();
    const leasedOn = (s: TestServer) => s.app.scheduler.workerTable.size > 0 && [...s.app.scheduler.workerTable.values()].some((w) => w.volunteerId === volunteerId);
    await until(() => leasedOn(a) && leasedOn(b) && heldBy(a, volunteerId) > 0 && heldBy(b, volunteerId) > 0);

    // B catches it (an interactive answer its audit refuted): quarantined for good.
    b.app.scheduler.interactiveRefuted(volunteerId);
    expect(heldBy(b, volunteerId)).toBe(0);
    // A hears of it: its leases are withdrawn and it is no longer vetted nor given work there.
    await until(() => heldBy(a, volunteerId) === 0);
    expect(a.app.scheduler.vetted(volunteerId)).toBe(false);
    const aWorker = [...a.app.scheduler.workerTable.values()].find((w) => w.volunteerId === volunteerId)!;
    expect(() => a.app.scheduler.requestWork(aWorker.workerId, 2)).toThrow(/gets no more work/);
  }, 60_000);

  it('holds a network origin to its connection cap over both servers, not on each', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const client = (url: string, bind: string) => {
      const s = connect(url, { transports: ['websocket'], forceNew: true, reconnection: false, localAddress: bind } as Parameters<typeof connect>[1]);
      sockets.push(s);
      return new Promise<Socket>((resolve, reject) => { s.once('connect', () => resolve(s)); s.once('connect_error', reject); });
    };
    for (let i = 0; i < 3; i++) await client(a.url, '127.0.0.9');
    // B learns what the origin holds on A at A's next tick.
    await until(() => b.app.origins?.connectionsElsewhere('127.0.0.9') === 3);
    await client(b.url, '127.0.0.9');
    await expect(client(b.url, '127.0.0.9')).rejects.toThrow(/too many connections from your network/);
    // Another origin is not held to it.
    await client(b.url, '127.0.0.10');
  }, 60_000);
});

/** Leases a server's memory holds for a volunteer. */
function heldBy(s: TestServer, volunteerId: string): number {
  return s.app.scheduler.leasesOf(volunteerId);
}

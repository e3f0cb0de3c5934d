/**
 * Every tensor travels as its own binary attachment, and socket.io's stock parser refuses a packet with more
 * than 10. Here a model with 3 inputs and 12 outputs runs on the real headless WorkLoop with 16 slots against
 * the real server: task lists of 16 tasks (48 attachments) reach the worker and results of 12 outputs reach the
 * server, the job completes with the reference's outputs and the worker never reconnects. The server's parser
 * stays bounded: a result with more tensors than the protocol allows closes the connection.
 */
import { type Socket, io } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { NodeRunner } from '../../cli/node-runner.js';
import { openWorkerSocket } from '../../client/net/open-worker-socket.js';
import { clientParser } from '../../client/net/socket-parser.js';
import { WorkLoop } from '../../client/net/work-loop.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { MAX_OUTPUTS, MAX_SLOTS } from '../../shared/protocol.js';
import { floatData } from '../helpers/models.js';
import { T, encodeGraph, tensorInfo } from '../helpers/onnx-build.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { npyTensor, reference } from '../helpers/workers.js';

const INPUTS = ['a', 'b', 'c'];
const OUTPUTS = 12;
const ITEMS = 64;
const OPS = ['Add', 'Sub', 'Mul', 'Max', 'Min'];

/** Inputs a, b, c float32 [n, 4]; output o<i> = OPS[i % 5](one pair of inputs), so each output differs. */
function wideModel(): Uint8Array {
  const info = (name: string) => tensorInfo(name, T.FLOAT, ['n', 4]);
  const pairs = [['a', 'b'], ['b', 'c'], ['c', 'a']];
  const outs = Array.from({ length: OUTPUTS }, (_, i) => `o${i}`);
  return encodeGraph({
    name: 'wide',
    node: outs.map((o, i) => ({ opType: OPS[i % OPS.length], input: pairs[Math.floor(i / OPS.length) % pairs.length], output: [o] })),
    input: INPUTS.map(info),
    output: outs.map(info),
  }, { irVersion: 7, opset: 13, producerName: 'tabgrid-tests' });
}

/** Binary leaves in a decoded packet's data: one attachment each on the wire. */
function binaries(v: unknown): number {
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return 1;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + binaries(x), 0);
  if (v && typeof v === 'object') return Object.values(v).reduce((n: number, x) => n + binaries(x), 0);
  return 0;
}

let server: TestServer;
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  await server?.close();
});

describe('many tensors in one message', () => {
  it(`runs a ${INPUTS.length}-input, ${OUTPUTS}-output model on ${MAX_SLOTS} slots through the real server and WorkLoop`, async () => {
    // Leases are capped by standing; a newcomer may hold all 16 slots here, so one answer carries 16 tasks.
    server = await startTestServer({ config: { newcomerLeases: MAX_SLOTS * 2 } });
    const api = new ApiClient(server.url, server.apiKey);
    const model = wideModel();
    const m = await api.uploadModel(model);
    const npys = Object.fromEntries(INPUTS.map((name, i) => [name, writeNpy('float32', [ITEMS, 4], floatData(20 + i, ITEMS * 4))]));
    const inputs: Record<string, string> = {};
    for (const [name, npy] of Object.entries(npys)) inputs[name] = (await api.uploadDataset(npy)).hash;

    let attachments = 0;
    let disconnects = 0;
    let dropped!: (err: Error) => void;
    const drop = new Promise<never>((_, reject) => { dropped = reject; });
    drop.catch(() => {});
    let joined!: () => void;
    const connected = new Promise<void>((r) => { joined = r; });
    const runner = new NodeRunner();
    const loop = new WorkLoop({
      serverUrl: server.url, slots: MAX_SLOTS, runner, hello: { kind: 'node', backends: ['cpu'] },
      connect: (url) => {
        const socket = openWorkerSocket(url);
        // Every packet the worker decodes, acks included: the most binary attachments one carried.
        socket.io.on('packet', (p) => { attachments = Math.max(attachments, binaries(p.data)); });
        // On the stock parser a task list of more than 10 tensors is a parse error, and the socket drops.
        socket.on('disconnect', (reason) => { disconnects++; dropped(new Error(`the worker's socket dropped: ${reason}`)); });
        return socket;
      },
      onStatus: (s) => { if (s.connected) joined(); },
    });
    cleanup.push(() => runner.close(), () => loop.stop());
    loop.start();
    await connected;

    const job = await api.createJob({ model: m.hash, inputs, batchSize: 1, replicas: 1, canaryRate: 0 });
    const done = await Promise.race([api.waitJob(job.id, undefined, 100), drop]);
    expect(done.status, JSON.stringify(done.failures)).toBe('completed');
    expect(done.outputs).toHaveLength(OUTPUTS);
    const want = await reference(model, npys);
    for (let i = 0; i < OUTPUTS; i++) {
      const got = npyTensor(`o${i}`, await api.result(job.id, `o${i}`));
      expect(compareOutputs([got], [want[`o${i}`]!], { rtol: 0, atol: 0 })).toEqual({ verdict: 'agree' });
    }
    expect(loop.status).toMatchObject({ tasksDone: ITEMS, tasksFailed: 0, lastError: null });
    expect(attachments).toBeGreaterThan(10);
    expect(disconnects).toBe(0);
  });

  it(`keeps the server's parser bounded: ${MAX_OUTPUTS} tensors in a result are decoded, ${MAX_OUTPUTS + 1} close the connection`, async () => {
    server = await startTestServer();
    const connect = async (): Promise<Socket> => {
      const s = io(server.url, { transports: ['websocket'], forceNew: true, reconnection: false, parser: clientParser });
      cleanup.push(() => s.disconnect());
      await new Promise<void>((r) => s.once('connect', () => r()));
      expect(await s.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] })).toMatchObject({ ok: true });
      return s;
    };
    const result = (n: number) => ({
      replicaId: 'r-none', backend: 'cpu', runMs: 1,
      outputs: Array.from({ length: n }, (_, i) => ({ name: `o${i}`, dtype: 'float32', dims: [1], data: new Uint8Array(4) })),
    });
    const within = await connect();
    // Decoded and answered by the handler (no such lease), not refused by the parser.
    expect(await within.emitWithAck('task:result', result(MAX_OUTPUTS))).toMatchObject({ ok: false, error: { code: expect.not.stringMatching(/INVALID_PAYLOAD/) } });

    const over = await connect();
    const gone = new Promise<string>((r) => over.once('disconnect', r));
    over.emit('task:result', result(MAX_OUTPUTS + 1), () => {});
    expect(await gone).toBe('transport close');
  });
});

/**
 * PeerInfer against real HTTP servers standing in for the other servers: the request is passed on packed, with the
 * caller's key and the forwarded mark; peers that cannot be reached or have nobody (503) are passed over, the one that
 * answered is asked first next time, and a refusal of the request itself comes back as the peer gave it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../shared/errors.js';
import { TENSORS_CONTENT_TYPE } from '../../shared/infer.js';
import { packTensors, unpackTensors } from '../../shared/tensor-pack.js';
import type { Tensor } from '../../shared/tensor.js';
import { FORWARDED_HEADER, PeerInfer } from './peer-infer.js';

const REQ = { model: 'a'.repeat(64), replicas: 1 as const, rtol: 1e-3, atol: 1e-4 };
const X: Tensor = { name: 'x', dtype: 'float32', dims: [1, 2], data: new Uint8Array(new Float32Array([1, 2]).buffer) };

interface Seen { peer: string; url: string; auth?: string; forwarded?: string; inputs: Tensor[] }
const seen: Seen[] = [];
const servers: http.Server[] = [];

/** A stand-in server that records what it is sent and answers with `answer`. */
async function peer(name: string, answer: (res: http.ServerResponse) => void): Promise<string> {
  const s = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ peer: name, url: req.url!, auth: req.headers.authorization, forwarded: req.headers[FORWARDED_HEADER] as string, inputs: unpackTensors(new Uint8Array(Buffer.concat(chunks))) });
      answer(res);
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const error = (status: number, code: string, message: string) => (res: http.ServerResponse) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code, message } }));
const Y: Tensor = { name: 'y', dtype: 'float32', dims: [1], data: new Uint8Array(new Float32Array([7]).buffer) };

let busy = '';
let good = '';
let limited = '';
let refused = '';
beforeAll(async () => {
  busy = await peer('busy', error(503, 'UNAVAILABLE', 'no vetted volunteer who serves interactive requests is online'));
  good = await peer('good', (res) => res.writeHead(200, {
    'content-type': TENSORS_CONTENT_TYPE, 'x-tabgrid-verified': 'vetted-volunteer', 'x-tabgrid-run-ms': '3', 'x-tabgrid-hedged': 'false', 'x-tabgrid-backend': 'cpu',
  }).end(Buffer.from(packTensors([Y]))));
  limited = await peer('limited', error(429, 'RATE_LIMITED', 'over the rate'));
  refused = await peer('closed', () => {});
  await new Promise((r) => servers.pop()!.close(r)); // nothing listens there any more
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
});

describe('PeerInfer', () => {
  it('passes the request on packed to each peer in turn until one answers, and asks that one first next time', async () => {
    let peers = [refused, busy, good];
    const p = new PeerInfer({ peers: () => peers, log: pino({ level: 'silent' }) });
    seen.length = 0;
    const answer = await p.infer(REQ, [X], 5_000, 'Bearer k');
    expect(answer).toMatchObject({ verified: 'vetted-volunteer', runMs: 3, hedged: false, backend: 'cpu' });
    expect(answer!.outputs).toEqual([Y]);
    expect(seen.map((s) => s.peer)).toEqual(['busy', 'good']);
    for (const s of seen) {
      expect(s).toMatchObject({ auth: 'Bearer k', forwarded: '1', inputs: [X] });
      expect(new URL(s.url, 'http://x').searchParams.get('model')).toBe(REQ.model);
    }

    seen.length = 0;
    await p.infer(REQ, [X], 5_000, 'Bearer k');
    expect(seen.map((s) => s.peer)).toEqual(['good']);

    // Nobody anywhere: null (the caller then answers 503 itself); no peer at all: nobody asked.
    peers = [busy, refused];
    expect(await p.infer(REQ, [X], 5_000, 'Bearer k')).toBeNull();
    peers = [];
    seen.length = 0;
    expect(await p.infer(REQ, [X], 5_000, 'Bearer k')).toBeNull();
    expect(seen).toEqual([]);
  });

  it('gives back a refusal of the request itself as the peer gave it, asking no one else', async () => {
    const p = new PeerInfer({ peers: () => [limited, good], log: pino({ level: 'silent' }) });
    seen.length = 0;
    const err = await p.infer(REQ, [X], 5_000, 'Bearer k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'RATE_LIMITED', message: 'over the rate' });
    expect(seen.map((s) => s.peer)).toEqual(['limited']);
  });
});

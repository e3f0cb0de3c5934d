import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyError, streamUpload } from './stream-upload.js';

const servers: http.Server[] = [];
afterEach(() => { for (const s of servers.splice(0)) s.close(); });

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/up`;
}

const MiB = 1 << 20;

describe('streamUpload', () => {
  it('sends the chunks in order as the connection takes them, never far ahead of what the server has read', async () => {
    let received = 0;
    let lead = 0;
    const url = await serve((req, res) => {
      const marks: number[] = []; // the byte at each MiB boundary: chunk i is filled with i
      req.on('data', (d: Buffer) => {
        for (let i = (MiB - (received % MiB)) % MiB; i < d.byteLength; i += MiB) marks.push(d[i]);
        received += d.byteLength;
        // A slow reader: the sender must wait for it rather than pile chunks up in memory.
        req.pause();
        setImmediate(() => req.resume());
      });
      req.on('end', () => res.end(JSON.stringify({ bytes: received, marks, header: req.headers['content-type'] })));
    });
    async function* chunks() {
      for (let i = 0; i < 48; i++) {
        lead = Math.max(lead, i * MiB - received);
        yield new Uint8Array(MiB).fill(i);
      }
    }
    const answer = await streamUpload('POST', url, { 'content-type': 'application/octet-stream' }, chunks());
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({ bytes: 48 * MiB, marks: Array.from({ length: 48 }, (_, i) => i), header: 'application/octet-stream' });
    // Socket buffers and stream high-water marks hold a few MiB at most; the whole body is 48.
    expect(lead).toBeLessThan(16 * MiB);
  });

  it('cuts the request when making the body fails, and reports that failure', async () => {
    let arrived!: () => void;
    const firstChunkArrived = new Promise<void>((resolve) => { arrived = resolve; });
    let cut!: (code: string) => void;
    const serverSaw = new Promise<string>((resolve) => { cut = resolve; });
    const url = await serve((req) => {
      req.once('data', () => arrived());
      req.on('error', (err) => cut((err as NodeJS.ErrnoException).code ?? err.message));
      req.on('end', () => cut('the whole body'));
    });
    async function* failing() {
      yield new Uint8Array(1000);
      await firstChunkArrived; // the server is reading this request when the body fails
      throw new Error('photos/b.png: cannot decode it as PNG');
    }
    const err = await streamUpload('POST', url, {}, failing()).catch((e) => e);
    expect(err).toBeInstanceOf(BodyError);
    expect((err as BodyError).error).toEqual(new Error('photos/b.png: cannot decode it as PNG'));
    expect(await serverSaw).toBe('ECONNRESET');
  });

  it('gives a refusal that comes before the whole body went', async () => {
    const url = await serve((req, res) => {
      res.statusCode = 413;
      res.end(JSON.stringify({ error: { code: 'TOO_LARGE', message: 'too big' } }));
      req.resume();
    });
    async function* big() { for (let i = 0; i < 8; i++) yield new Uint8Array(MiB); }
    const answer = await streamUpload('POST', url, {}, big());
    expect(answer).toEqual({ status: 413, text: JSON.stringify({ error: { code: 'TOO_LARGE', message: 'too big' } }) });
  });

  it('rejects with the connection\'s error when nobody listens', async () => {
    async function* one() { yield new Uint8Array(1); }
    await expect(streamUpload('POST', 'http://127.0.0.1:1/', {}, one())).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

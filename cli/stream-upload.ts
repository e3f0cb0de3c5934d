/**
 * A request body sent as it is made, chunk by chunk, with node:http(s) rather than fetch: Node's fetch keeps
 * every chunk of a streamed request body in memory until the request ends (nodejs/undici#4058), which is what
 * streaming a large data set must not do. The connection's backpressure paces the chunks' making.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface StreamedResponse { status: number; text: string }

/** What made the upload stop: the body's own error (a value it could not convert) or the connection's. */
export class BodyError extends Error {
  constructor(readonly error: unknown) {
    super('the request body failed', { cause: error });
    this.name = 'BodyError';
  }
}

async function* watched(chunks: AsyncIterable<Uint8Array>, onError: (err: unknown) => void): AsyncGenerator<Uint8Array> {
  try {
    yield* chunks;
  } catch (err) {
    onError(err);
    throw err;
  }
}

/**
 * POSTs (or `method`s) the chunks to `url` and resolves to the response's status and text. Rejects with
 * BodyError when making the body failed (the request is aborted, so the server keeps none of it), or with
 * the connection's error.
 */
export function streamUpload(method: string, url: string, headers: Record<string, string>, chunks: AsyncIterable<Uint8Array>): Promise<StreamedResponse> {
  const target = new URL(url);
  const request = (target.protocol === 'https:' ? https : http).request(target, { method, headers });
  let bodyError: { error: unknown } | undefined;
  const source = Readable.from(watched(chunks, (error) => { bodyError = { error }; }), { objectMode: false });
  return new Promise<StreamedResponse>((resolve, reject) => {
    let answered = false;
    const fail = (err: unknown) => {
      if (answered) return;
      answered = true;
      reject(bodyError ? new BodyError(bodyError.error) : err);
    };
    request.on('error', fail);
    request.on('response', (res) => {
      // An answer can come before the whole body went (a refusal); the connection may then be cut under us.
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      const done = () => {
        if (answered) return;
        answered = true;
        resolve({ status: res.statusCode ?? 0, text });
      };
      res.on('end', done);
      res.on('error', done);
      res.on('close', done);
    });
    pipeline(source, request).catch(fail);
  });
}

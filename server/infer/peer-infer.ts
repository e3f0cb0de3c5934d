/**
 * Interactive requests across servers on one database: a request that reaches a server with no vetted volunteer
 * serving interactive requests is passed to the other servers in turn, over HTTP, as the binary variant of
 * `POST /api/v1/infer` with the caller's own key (every server knows every key), until one answers. A passed request
 * carries FORWARDED_HEADER, and a server never passes one on again. The server that answered last is asked first.
 */
import type { Logger } from 'pino';
import { AppError, ErrorCode } from '../../shared/errors.js';
import { INFER_MAX_BINARY_BYTES, InferVerified, TENSORS_CONTENT_TYPE } from '../../shared/infer.js';
import { packTensors, unpackTensors } from '../../shared/tensor-pack.js';
import type { Tensor } from '../../shared/tensor.js';

/** Marks a request passed on by another server: answered here or refused, never passed on again. */
export const FORWARDED_HEADER = 'x-tabgrid-forwarded';

export interface PeerRequest { model: string; replicas: 1 | 2; rtol: number; atol: number }

/** What a peer answered (its own `ms` left out: the time that counts is the caller's). */
export interface PeerAnswer { outputs: Tensor[]; verified: InferVerified; runMs: number; hedged: boolean; backend: string }

export interface PeerInferDeps {
  /** The other servers' URLs. */
  peers(): string[];
  log: Logger;
}

const VERIFIED = new Set<string>(Object.values(InferVerified));

export class PeerInfer {
  private lastAnswered: string | null = null;

  constructor(private readonly deps: PeerInferDeps) {}

  /**
   * Asks the other servers in turn until one answers; null when none could (no peer, or each had no volunteer in time).
   * An answer that is a refusal of the request itself (over the key's rate, say) is thrown as the peer gave it.
   */
  async infer(req: PeerRequest, inputs: Tensor[], timeoutMs: number, authorization: string): Promise<PeerAnswer | null> {
    const deadline = Date.now() + timeoutMs;
    const peers = [...this.deps.peers()];
    const last = this.lastAnswered === null ? -1 : peers.indexOf(this.lastAnswered);
    if (last > 0) peers.unshift(...peers.splice(last, 1));
    const body = packTensors(inputs);
    for (const peer of peers) {
      const left = deadline - Date.now();
      if (left < 50) break;
      const answer = await this.ask(peer, req, body, left, authorization);
      if (answer) { this.lastAnswered = peer; return answer; }
    }
    return null;
  }

  /** One peer's answer; null when it had nobody to answer in time, or could not be reached. */
  private async ask(peer: string, req: PeerRequest, body: Uint8Array, timeoutMs: number, authorization: string): Promise<PeerAnswer | null> {
    const url = new URL('/api/v1/infer', peer);
    for (const [k, v] of Object.entries({ ...req, timeoutMs: Math.min(60_000, Math.floor(timeoutMs)) })) url.searchParams.set(k, String(v));
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST', body: body as Uint8Array<ArrayBuffer>, signal: AbortSignal.timeout(timeoutMs + 1_000),
        headers: { 'content-type': TENSORS_CONTENT_TYPE, accept: TENSORS_CONTENT_TYPE, authorization, [FORWARDED_HEADER]: '1' },
      });
    } catch (err) {
      this.deps.log.debug({ err, peer }, 'interactive request: a peer could not be reached');
      return null;
    }
    if (res.status === 503) { await res.body?.cancel(); return null; }
    if (!res.ok) throw await peerError(res);
    const bytes = await boundedBody(res, INFER_MAX_BINARY_BYTES + 64 * 1024);
    const verified = res.headers.get('x-tabgrid-verified') ?? '';
    if (!VERIFIED.has(verified)) throw new AppError('INTERNAL', `a peer's answer says it was verified as ${JSON.stringify(verified.slice(0, 40))}`);
    return {
      outputs: unpackTensors(bytes), verified: verified as InferVerified, runMs: Number(res.headers.get('x-tabgrid-run-ms')) || 0,
      hedged: res.headers.get('x-tabgrid-hedged') === 'true', backend: (res.headers.get('x-tabgrid-backend') ?? '').slice(0, 32),
    };
  }
}

/** A peer's refusal as the error it gave (`{ error: { code, message } }`), or as INTERNAL when it gave none we know. */
async function peerError(res: Response): Promise<AppError> {
  const body = await res.json().catch(() => null) as { error?: { code?: unknown; message?: unknown } } | null;
  const code = body?.error?.code;
  const message = typeof body?.error?.message === 'string' ? body.error.message.slice(0, 500) : `HTTP ${res.status}`;
  return typeof code === 'string' && code in ErrorCode ? new AppError(code as ErrorCode, message) : new AppError('INTERNAL', `another server failed the request: ${message}`);
}

/** The response's bytes, refused past `max` (a peer is one of ours, but its answer is still bounded). */
async function boundedBody(res: Response, max: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body?.getReader();
  for (let r = await reader?.read(); r && !r.done; r = await reader!.read()) {
    size += r.value.byteLength;
    if (size > max) { await reader!.cancel(); throw new AppError('TOO_LARGE', `another server's answer passed ${max} bytes`); }
    chunks.push(r.value);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

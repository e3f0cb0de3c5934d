/**
 * The server's recomputation of interactive answers a volunteer gave alone: a sample of them is run again on
 * onnxruntime-node, after the answer went out (it never delays one), one at a time and skipped while one runs,
 * so audits cost the server at most one core's share. A mismatch beyond the request's tolerance is reported.
 */
import * as ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { compareOutputs, type Tolerance } from '../../shared/compare.js';
import type { Tensor } from '../../shared/tensor.js';
import { fromOrtTensor, toOrtTensor } from '../onnx/ort-tensors.js';
import type { BlobStore } from '../store/blob-store.js';
import type { ModelRow } from '../store/store.js';

/** Sessions kept for audits. */
const MAX_SESSIONS = 2;

export interface InferAuditDeps {
  blobs: BlobStore;
  log: Logger;
  /** The answer disagreed with the server's run. */
  refuted(volunteerId: string, detail: string): void;
}

export interface InferAuditStats { run: number; refuted: number; skipped: number }

export class InferAudit {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private busy = false;
  readonly stats: InferAuditStats = { run: 0, refuted: 0, skipped: 0 };

  constructor(private readonly deps: InferAuditDeps) {}

  /** Recomputes an answer in the background; resolves when done (tests wait on it). */
  async audit(model: ModelRow, inputs: Tensor[], outputs: Tensor[], volunteerId: string, tol: Tolerance = { rtol: 1e-3, atol: 1e-4 }): Promise<void> {
    if (this.busy) { this.stats.skipped++; return; }
    this.busy = true;
    try {
      const session = await this.session(model.hash);
      const feeds = Object.fromEntries(inputs.map((t) => [t.name, toOrtTensor(t.dtype, t.dims, t.data)]));
      const out = await session.run(feeds);
      const mine = Object.entries(out).map(([name, t]) => fromOrtTensor(name, t));
      this.stats.run++;
      const verdict = compareOutputs(outputs, mine, tol);
      if (verdict.verdict === 'disagree') {
        this.stats.refuted++;
        this.deps.log.warn({ volunteerId, model: model.hash, detail: verdict.detail }, 'interactive answer refuted by the server\'s run');
        this.deps.refuted(volunteerId, verdict.detail);
      }
    } catch (err) {
      this.deps.log.warn({ err, model: model.hash }, 'interactive audit could not run');
    } finally {
      this.busy = false;
    }
  }

  private session(hash: string): Promise<ort.InferenceSession> {
    let s = this.sessions.get(hash);
    if (!s) {
      if (this.sessions.size >= MAX_SESSIONS) {
        const [oldest, p] = this.sessions.entries().next().value!;
        this.sessions.delete(oldest);
        void p.then((x) => x.release()).catch(() => {});
      }
      s = ort.InferenceSession.create(this.deps.blobs.pathOf(hash));
      s.catch(() => this.sessions.delete(hash));
      this.sessions.set(hash, s);
    }
    return s;
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await s.then((x) => x.release()).catch(() => {});
    this.sessions.clear();
  }
}

/**
 * The interactive router's link to workers over their sockets: `infer:warm` and `infer:run` are emitted with an
 * ack and a timeout, and the worker's answer is parsed (it is not trusted) before the router sees it.
 */
import type { Socket } from 'socket.io';
import type { z } from 'zod';
import { AppError } from '../../shared/errors.js';
import { inferAnswerSchema, inferWarmAnswerSchema } from '../../shared/infer.js';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/protocol.js';
import { safeText } from '../../shared/safe-text.js';
import { asBytes } from '../../shared/tensor.js';
import type { WorkerLink } from '../infer/infer-router.js';

type WorkerSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

/** Emits `event` to the worker and resolves with its parsed answer; rejects on a refusal, a timeout or a bad answer. */
function ask<S extends z.ZodTypeAny>(socket: WorkerSocket | undefined, event: 'infer:warm' | 'infer:run', payload: unknown, timeoutMs: number, schema: S): Promise<z.infer<S>> {
  return new Promise((resolve, reject) => {
    if (!socket) { reject(new AppError('UNAVAILABLE', 'the worker has left')); return; }
    const timed = socket.timeout(Math.max(1, Math.floor(timeoutMs))) as unknown as { emit(e: string, p: unknown, cb: (err: unknown, res: unknown) => void): void };
    timed.emit(event, payload, (err, res) => {
      if (err) { reject(new AppError('UNAVAILABLE', `the worker did not answer within ${Math.round(timeoutMs)} ms`)); return; }
      const r = res as { ok?: unknown; error?: { message?: unknown } } | null;
      if (!r || r.ok !== true) {
        reject(new AppError('UNAVAILABLE', `the worker could not: ${safeText(String(r?.error?.message ?? 'no reason given')).slice(0, 200)}`));
        return;
      }
      const parsed = schema.safeParse(r);
      if (!parsed.success) { reject(new AppError('INVALID_PAYLOAD', 'the worker\'s answer is malformed')); return; }
      resolve(parsed.data);
    });
  });
}

export function interactiveLink(socketOf: (workerId: string) => WorkerSocket | undefined): WorkerLink {
  return {
    warm: (id, req, timeoutMs) => ask(socketOf(id), 'infer:warm', req, timeoutMs, inferWarmAnswerSchema),
    run: async (id, req, timeoutMs) => {
      const a = await ask(socketOf(id), 'infer:run', req, timeoutMs, inferAnswerSchema);
      return { runMs: a.runMs, backend: a.backend, outputs: a.outputs.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, data: asBytes(t.data) })) };
    },
    cancel: (id, requestId) => { socketOf(id)?.emit('infer:cancel', requestId); },
    cool: (id, modelHash) => { socketOf(id)?.emit('infer:cool', modelHash); },
  };
}

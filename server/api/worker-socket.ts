/**
 * The socket.io side of the worker protocol. Every handler parses its payload with the shared zod
 * schema and answers through its ack: `{ ok: true, ... }` or `{ ok: false, error }`. A malformed event,
 * a missing ack or a throwing handler never takes the server down.
 *
 * Group commit: the events that arrive in one turn of the event loop are handled together in one store
 * transaction (each in a savepoint of its own, so one that fails changes nothing), and their acks and the
 * tasks pushed meanwhile go out only after that transaction commits.
 *
 * Before any of that, socket-guards.ts bounds what a connection may cost (message size before and after hello,
 * connections per network origin, events a second). A site is credited only on a site token the server signed
 * when it served widget.js (server/auth/site-tokens.ts), never on the worker's word.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Server, Socket } from 'socket.io';
import { z } from 'zod';
import type { OriginShare } from '../cluster/origin-share.js';
import type { WorkerView } from '../../shared/dashboard-protocol.js';
import { AppError } from '../../shared/errors.js';
import {
  type AdapterInfo, type ClientToServerEvents, MAX_SERVERS, type ResultAccepted, type ServerToClientEvents, type VolunteerStats, profileSchema, releaseSchema,
  statsRequestSchema, taskErrorSchema, taskResultSchema, workRequestSchema, workerHelloSchema,
} from '../../shared/protocol.js';
import type { SiteTokens } from '../auth/site-tokens.js';
import type { AppEvents } from '../events.js';
import { asBytes } from '../../shared/tensor.js';
import { ResultRefused, type Scheduler, type WorkerInfo } from '../scheduler/scheduler.js';
import type { Clock } from '../scheduler/clock.js';
import type { Store } from '../store/store.js';
import { type SocketGuardConfig, SocketGuards } from './socket-guards.js';
import { Refusal, type TickBatch } from './tick-batch.js';
import { toWireError } from './wire-error.js';
import type { InferRouter } from '../infer/infer-router.js';
import { interactiveLink } from './interactive-link.js';

export type TabGridIo = Server<ClientToServerEvents, ServerToClientEvents>;
export type { WorkerInfo };
type WorkerSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

/** A connected worker as the admin's views show it (REST and the dashboard feed); `server`: the URL of the one it is on. */
export const workerView = (w: WorkerInfo, server?: string | null): WorkerView => ({
  workerId: w.workerId, volunteerId: w.volunteerId, kind: w.kind, backends: w.backends, adapter: w.adapter as AdapterInfo | undefined,
  site: w.site, origin: w.origin ?? '', connectedAt: w.connectedAt, ...(server ? { server } : {}),
});

export interface WorkerSocketDeps {
  io: TabGridIo;
  /** The group commit of the socket events, which the scheduler's own answers join too (app.ts makes it). */
  batch: TickBatch;
  scheduler: Scheduler;
  store: Store;
  clock: Clock;
  log: Logger;
  events: AppEvents;
  config: SocketGuardConfig;
  siteTokens: SiteTokens;
  /** Interactive inference: the router is given a link to the workers through these sockets. */
  infer?: InferRouter;
  /**
   * The other servers of the network (public URLs), named in each hello's ack so a worker whose server goes away
   * knows where to go; read at every hello, since servers come and go. Absent or empty: the ack names none.
   */
  peers?: () => string[];
  /** Servers sharing a database: per-origin caps counted over all of them. */
  origins?: OriginShare;
}

/** Wires the worker events; returns the live worker table (the scheduler's, for status pages). */
export function attachWorkerSockets(deps: WorkerSocketDeps): Map<string, WorkerInfo> {
  const { io, scheduler, store, clock, log, events, siteTokens } = deps;
  const statsOf = (volunteerId: string): VolunteerStats => {
    const v = store.getVolunteer(volunteerId)!;
    return {
      volunteerId, name: v.name, team: v.team, credit: v.credit, valid: v.valid, invalid: v.invalid,
      quarantined: v.quarantinedAt !== null, rank: store.volunteerRank(volunteerId),
    };
  };
  const socketOf = new Map<string, WorkerSocket>();
  const { batch } = deps;
  const guards = new SocketGuards({ io, config: deps.config, clock, log, origins: deps.origins });
  guards.install();

  io.on('connection', (socket: WorkerSocket) => {
    let workerId: string | null = null;

    const on = <S extends z.ZodTypeAny, R extends object>(
      event: keyof ClientToServerEvents, schema: S, handler: (payload: z.infer<S>) => R,
    ) => {
      socket.on(event, (...args: unknown[]) => {
        const ack = typeof args[args.length - 1] === 'function' ? (args.pop() as (r: unknown) => void) : () => {};
        const parsed = schema.safeParse(args[0]);
        if (!parsed.success) {
          const wire = toWireError(parsed.error, log);
          log.debug({ event, code: wire.code, message: wire.message }, 'socket event refused');
          ack({ ok: false, error: wire });
          return;
        }
        batch.add(event, () => handler(parsed.data), ack);
      });
    };

    const registered = (): string => {
      if (!workerId) throw new AppError('UNAUTHORIZED', 'say worker:hello first');
      return workerId;
    };

    on('worker:hello', workerHelloSchema, (hello) => {
      if (workerId) throw new AppError('CONFLICT', 'worker:hello was already said on this connection');
      const token = hello.token ?? randomBytes(24).toString('hex');
      const tokenHash = createHash('sha256').update(token).digest('hex');
      const volunteer = store.volunteerFor(tokenHash, `vol-${randomBytes(6).toString('hex')}`, clock.now());
      workerId = `w-${randomBytes(6).toString('hex')}`;
      const site = siteTokens.verify(hello.siteToken);
      const origin = guards.originOf(socket);
      socketOf.set(workerId, socket);
      scheduler.connect(workerId, volunteer.id, {
        kind: hello.kind, backends: hello.backends, adapter: hello.adapter, interactive: hello.interactive ?? false,
        adapterClass: `${hello.adapter?.vendor || '-'}|${hello.adapter?.architecture || '-'}`, site, origin, cached: hello.cached, limits: hello.limits,
      });
      guards.greeted(socket);
      log.info({ workerId, volunteerId: volunteer.id, kind: hello.kind, backends: hello.backends, adapter: hello.adapter, site, origin }, 'worker joined');
      events.emit('worker:joined', workerId);
      const servers = deps.peers?.().slice(0, MAX_SERVERS) ?? [];
      return { workerId, volunteerId: volunteer.id, token, ...(servers.length ? { servers } : {}) };
    });

    const volunteerOf = () => {
      const w = scheduler.workerTable.get(registered());
      if (!w) throw new AppError('UNAUTHORIZED', 'this connection has closed');
      return w.volunteerId;
    };

    on('work:request', workRequestSchema, (req) => ({ tasks: scheduler.requestWork(registered(), req.slots) }));

    on('task:result', taskResultSchema, (res): ResultAccepted | Refusal => {
      const id = registered();
      const outputs = res.outputs.map((t) => ({ name: t.name, dtype: t.dtype, dims: t.dims, data: asBytes(t.data) }));
      let accepted: boolean;
      try {
        ({ accepted } = scheduler.submitResult(id, res.replicaId, outputs, { backend: res.backend, runMs: res.runMs }));
      } catch (err) {
        // Refused after being recorded as invalid: the worker hears why, and the record stays.
        if (err instanceof ResultRefused) return new Refusal(err);
        throw err;
      }
      if (!res.next) return { accepted };
      // The next tasks ride on the ack. Should none be given now (draining, quarantined), the worker asks
      // again with work:request and hears why there; the lease's own savepoint undid anything half done.
      try {
        return { accepted, tasks: scheduler.requestWork(id, res.next) };
      } catch (err) {
        log.debug({ err, workerId: id }, 'no next task on the result\'s ack');
        return { accepted };
      }
    });

    on('task:error', taskErrorSchema, (err) => {
      scheduler.reportError(registered(), err.replicaId, err.message);
      return {};
    });

    on('task:release', releaseSchema, (req) => ({ released: scheduler.release(registered(), req.replicaIds) }));

    on('volunteer:profile', profileSchema, (p) => {
      const id = volunteerOf();
      store.updateVolunteer(id, {
        ...(p.name !== undefined ? { name: p.name || null } : {}),
        ...(p.team !== undefined ? { team: p.team || null } : {}),
      });
      return { stats: statsOf(id) };
    });

    on('volunteer:stats', statsRequestSchema, () => ({ stats: statsOf(volunteerOf()) }));

    socket.on('disconnect', () => {
      if (!workerId) return;
      const id = workerId;
      socketOf.delete(id);
      deps.infer?.workerLeft(id);
      // In turn with the events before it: a result that arrived just before the socket closed still counts.
      // Said to have left once the scheduler let it go: until then a new job could still lease it a task.
      batch.add('disconnect', () => {
        try {
          scheduler.disconnect(id);
        } finally {
          events.emit('worker:left', id);
        }
        return {};
      }, (res) => {
        if ((res as { ok: boolean }).ok === false) log.error({ workerId: id, res }, 'releasing leases failed');
      });
    });
  });

  deps.infer?.setLink(interactiveLink((id) => socketOf.get(id)));
  scheduler.setEvents({
    deliver: (id, tasks) => batch.afterCommit(() => socketOf.get(id)?.emit('task:assign', tasks)),
    cancel: (id, ids) => batch.afterCommit(() => socketOf.get(id)?.emit('task:cancel', ids)),
    jobChanged: (jobId) => events.emit('job:changed', jobId),
    volunteerQuarantined: (volunteerId) => events.emit('volunteer:quarantined', volunteerId),
  });
  return scheduler.workerTable;
}

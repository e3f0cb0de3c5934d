/**
 * Messages between servers on one database, over socket.io's server-side events (the Postgres adapter carries
 * them with LISTEN/NOTIFY on the same database: no Redis). Each message is parsed: a peer is trusted, but a
 * malformed one is dropped with a warning rather than acted on.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import type { ClusterBus, ClusterMessage } from '../cluster/cluster-member.js';
import type { TabGridIo } from './worker-socket.js';

const EVENT = 'cluster:message';

const messageSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('jobs') }),
  z.object({ kind: z.literal('quarantined'), volunteerId: z.string().min(1).max(200) }),
]);

type ServerSideIo = { serverSideEmit(event: string, ...args: unknown[]): boolean; on(event: string, listener: (...args: unknown[]) => void): unknown };

export function clusterBus(io: TabGridIo, log: Logger): ClusterBus {
  const side = io as unknown as ServerSideIo;
  return {
    send(message: ClusterMessage) {
      side.serverSideEmit(EVENT, message);
    },
    onMessage(handler) {
      side.on(EVENT, (raw: unknown) => {
        const parsed = messageSchema.safeParse(raw);
        if (!parsed.success) { log.warn({ issues: parsed.error.issues.length }, 'malformed message from another server dropped'); return; }
        handler(parsed.data);
      });
    },
  };
}

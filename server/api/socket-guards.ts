/**
 * Bounds on what an anonymous worker connection may cost the server, applied before any handler runs:
 * - message size: until its `worker:hello` is accepted a connection may send no socket message larger than
 *   `preHelloMaxBytes`, and after it none larger than `maxMessageBytes` in all (a message and its binary
 *   attachments together). The engine socket's `packet` event fires before the packet is handed to socket.io's
 *   decoder, and closing the connection there (discarding the transport, which is synchronous) removes the
 *   decoder's listener, so an oversized message is never decoded;
 * - connections: at most `maxConnectionsPerOrigin` worker connections at once from one network origin;
 * - event rate: a token bucket per connection; an event over the rate is answered RATE_LIMITED without running,
 *   and a connection that keeps flooding is dropped.
 * The dashboard's namespace (`/dashboard`, authenticated by key) is not counted against the origin's connections.
 */
import type { Logger } from 'pino';
import type { Socket } from 'socket.io';
import { AppError } from '../../shared/errors.js';
import type { OriginShare } from '../cluster/origin-share.js';
import type { Config } from '../config.js';
import type { Clock } from '../scheduler/clock.js';
import { EventRate } from './event-rate.js';
import { clientAddress, originOf } from './origin.js';
import { toWireError } from './wire-error.js';
import type { TabGridIo } from './worker-socket.js';

export type SocketGuardConfig = Pick<Config,
  'trustProxy' | 'ipv4OriginPrefix' | 'maxConnectionsPerOrigin' | 'preHelloMaxBytes' | 'maxMessageBytes' | 'socketEventsPerSecond'>;

export interface SocketGuardDeps {
  io: TabGridIo;
  config: SocketGuardConfig;
  clock: Clock;
  log: Logger;
  /** Servers sharing a database: connections each origin holds on the others count against its cap too. */
  origins?: OriginShare;
}

/** What the guards need of an engine.io socket (the transport-level connection under a socket.io socket). */
interface EngineConnection {
  readonly remoteAddress: string;
  on(event: 'packet', fn: (packet: { type: string; data?: unknown }) => void): void;
  once(event: 'close', fn: () => void): void;
  close(discard?: boolean): void;
}

/** Bytes of the socket.io message being received on one connection, and whether its hello was accepted. */
interface Meter { bytes: number; greeted: boolean }

export class SocketGuards {
  private readonly meters = new WeakMap<object, Meter>();
  private readonly origins = new WeakMap<Socket, string>();
  private readonly perOrigin = new Map<string, number>();

  constructor(private readonly deps: SocketGuardDeps) {
    deps.origins?.provide({ connections: () => this.perOrigin });
  }

  /** Installs the guards on the server; call once, before the worker connection handler is attached. */
  install(): void {
    this.deps.io.engine.on('connection', (conn: EngineConnection) => this.meter(conn));
    this.deps.io.use((socket, next) => {
      const refusal = this.admit(socket);
      if (!refusal) { next(); return; }
      next(Object.assign(new Error(refusal.message), { data: toWireError(refusal, this.deps.log) }));
    });
  }

  /** The network origin a connection came from (see origin.ts). */
  originOf(socket: Socket): string {
    return this.origins.get(socket) ?? this.addressOrigin(socket);
  }

  /** The connection said an accepted hello: its messages may now be as large as the protocol allows. */
  greeted(socket: Socket): void {
    const meter = this.meters.get(socket.conn);
    if (meter) meter.greeted = true;
  }

  /** Connections open from each origin that has any, for status pages and tests. */
  connectionsByOrigin(): ReadonlyMap<string, number> {
    return this.perOrigin;
  }

  private addressOrigin(socket: Socket): string {
    const { config } = this.deps;
    const address = clientAddress(socket.handshake.address, socket.handshake.headers['x-forwarded-for'], config.trustProxy);
    return originOf(address, { ipv4Prefix: config.ipv4OriginPrefix });
  }

  /**
   * Counts a socket.io message's bytes as its engine packets arrive: a text packet starts a message, binary
   * packets are its attachments. Over the limit the connection is closed before socket.io sees the packet.
   */
  private meter(conn: EngineConnection): void {
    const meter: Meter = { bytes: 0, greeted: false };
    this.meters.set(conn, meter);
    conn.on('packet', (packet) => {
      if (packet.type !== 'message') return;
      const { data } = packet;
      if (typeof data === 'string') meter.bytes = Buffer.byteLength(data);
      else meter.bytes += (data as ArrayBufferLike | ArrayBufferView | undefined)?.byteLength ?? 0;
      const { preHelloMaxBytes, maxMessageBytes } = this.deps.config;
      const limit = meter.greeted ? maxMessageBytes : preHelloMaxBytes;
      if (meter.bytes <= limit) return;
      this.deps.log.info({ address: conn.remoteAddress, bytes: meter.bytes, limit, greeted: meter.greeted }, 'connection closed: message too large');
      conn.close(true);
    });
  }

  /** Refuses a connection over its origin's limit; otherwise counts it and limits its event rate. */
  private admit(socket: Socket): AppError | null {
    const { config, clock, log } = this.deps;
    const origin = this.addressOrigin(socket);
    const open = (this.perOrigin.get(origin) ?? 0) + (this.deps.origins?.connectionsElsewhere(origin) ?? 0);
    if (open >= config.maxConnectionsPerOrigin) {
      log.info({ origin, open }, 'connection refused: too many from its network');
      return new AppError('RATE_LIMITED',
        `too many connections from your network (${config.maxConnectionsPerOrigin} at once); close some tabs or workers and try again later`);
    }
    this.origins.set(socket, origin);
    this.perOrigin.set(origin, (this.perOrigin.get(origin) ?? 0) + 1);
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      const left = (this.perOrigin.get(origin) ?? 1) - 1;
      if (left > 0) this.perOrigin.set(origin, left); else this.perOrigin.delete(origin);
    };
    // Whichever comes first: a socket refused later in the handshake never emits `disconnect`, its transport closes.
    socket.once('disconnect', release);
    (socket.conn as unknown as EngineConnection).once('close', release);

    const rate = new EventRate(config.socketEventsPerSecond, clock.now());
    socket.use((packet, next) => {
      const verdict = rate.admit(clock.now());
      if (verdict === 'run') { next(); return; }
      if (verdict === 'drop') {
        log.info({ origin, event: packet[0] }, 'connection dropped: it kept sending events over the rate');
        socket.disconnect(true);
        return;
      }
      const ack = packet[packet.length - 1];
      const error = toWireError(new AppError('RATE_LIMITED', `over ${config.socketEventsPerSecond} events a second; slow down`), log);
      if (typeof ack === 'function') (ack as (res: unknown) => void)({ ok: false, error });
    });
    return null;
  }
}

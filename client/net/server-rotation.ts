/**
 * The servers a worker may work for, taken in turn: the ones it was started with (the page's own origin, or
 * `tabgrid worker --server A,B`), then the ones servers told it of in their hello's ack. The servers of one
 * network share a database, so the same volunteer token carries its credit and standing to whichever answers.
 * Plain data: no sockets, no timers, so the choice of the next server is tested on its own.
 */
import { MAX_SERVERS, serverUrlSchema } from '../../shared/protocol.js';

export { MAX_SERVERS };

/** A URL's identity for de-duplication: `http://h:1` and `http://h:1/` are one server. */
function keyOf(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

export class ServerRotation {
  private readonly urls: string[] = [];
  private readonly keys = new Set<string>();
  private at = 0;

  /** `urls` in the order to try them; the first is where the worker starts. Repeats are dropped. */
  constructor(urls: readonly string[]) {
    for (const u of urls) this.add(u);
    if (this.urls.length === 0) throw new Error('a worker needs at least one server URL');
  }

  /** The server to connect to now. */
  get current(): string { return this.urls[this.at]!; }

  /** Every server in the rotation, in turn order. */
  get all(): readonly string[] { return this.urls; }

  /**
   * Adds the servers a server told of to the end of the rotation: only http(s) URLs, none twice, and never
   * more than MAX_SERVERS in all (a server's word must not grow a worker's memory). Returns those added.
   */
  learn(told: unknown): string[] {
    if (!Array.isArray(told)) return [];
    return told.filter((u): u is string => serverUrlSchema.safeParse(u).success && this.add(u));
  }

  /** Moves to the next server in turn (round robin) and returns it; with only one server, that one. */
  advance(): string {
    this.at = (this.at + 1) % this.urls.length;
    return this.current;
  }

  private add(url: string): boolean {
    const key = keyOf(url);
    if (this.urls.length >= MAX_SERVERS || this.keys.has(key)) return false;
    this.keys.add(key);
    this.urls.push(url);
    return true;
  }
}

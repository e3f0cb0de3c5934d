/**
 * Site tokens: the server's signed word for which page embeds the widget. `/widget.js` is fetched by the
 * embedding page, so the request's Origin (or its Referer's origin) names that page's site; the server signs
 * `{ site, expires }` with HMAC-SHA256 and writes the token into the script it serves, the loader hands it to
 * the frame, and the frame's worker sends it in its hello. Only a valid, unexpired token credits a site; a
 * worker's own word (the hello's old `site` field) credits nothing.
 *
 * What this stops: a worker, a modified page or a console naming any site it likes. What it does not: a client
 * that forges the Referer header when it fetches widget.js gets a token for that origin, as a browser would on
 * that page. Site credit still comes only with verified work.
 *
 * The secret is 32 random bytes in `<dataDir>/site-token.key` (mode 0600), made on first use and kept across
 * restarts, so tokens stay valid through one.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Clock } from '../scheduler/clock.js';

/** How long a token credits its site: a long visit with the tab left donating, not a lasting credential. */
export const SITE_TOKEN_TTL_MS = 12 * 3600_000;
export const SITE_TOKEN_FILE = 'site-token.key';

const payloadSchema = z.object({ s: z.string().min(1).max(256), e: z.number().int() });

export interface SiteTokenDeps { dataDir: string; clock: Clock; ttlMs?: number }

export class SiteTokens {
  private secret: Buffer | null = null;

  constructor(private readonly deps: SiteTokenDeps) {}

  /** A token naming `site` (a web origin), valid for the TTL from now. */
  issue(site: string): string {
    const payload = Buffer.from(JSON.stringify({ s: site, e: this.deps.clock.now() + (this.deps.ttlMs ?? SITE_TOKEN_TTL_MS) })).toString('base64url');
    return `${payload}.${this.sign(payload)}`;
  }

  /** The site a token names, or null when it is malformed, forged or expired. */
  verify(token: string | undefined): string | null {
    if (!token) return null;
    const [payload, mac, extra] = token.split('.');
    if (!payload || !mac || extra !== undefined) return null;
    const want = Buffer.from(this.sign(payload));
    const got = Buffer.from(mac);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return null;
    let parsed: z.infer<typeof payloadSchema>;
    try {
      parsed = payloadSchema.parse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
    } catch {
      return null;
    }
    if (parsed.e <= this.deps.clock.now()) return null;
    return webOrigin(parsed.s);
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.key()).update(payload).digest('base64url');
  }

  /** The secret, read or made on first use; a server that races another to make it reads the winner's. */
  private key(): Buffer {
    if (this.secret) return this.secret;
    const file = path.join(this.deps.dataDir, SITE_TOKEN_FILE);
    try {
      fs.writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const hex = fs.readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${file} does not hold a site-token key (64 hex digits); delete it to make a new one`);
    this.secret = Buffer.from(hex, 'hex');
    return this.secret;
  }
}

/** The origin of an http(s) URL, or null. */
export function webOrigin(url: string | undefined): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.origin : null;
  } catch {
    return null;
  }
}

/**
 * The site that loaded a script, as its request tells: the Origin header (sent for CORS requests; "null" for
 * opaque origins), else the origin of the Referer (a classic `<script src>` sends the page's origin under the
 * default referrer policy). Null when neither names an http(s) origin, e.g. a page with `no-referrer`.
 */
export function requestingSite(origin: string | undefined, referer: string | undefined): string | null {
  return webOrigin(origin) ?? webOrigin(referer);
}

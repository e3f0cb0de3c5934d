import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SITE_TOKEN_FILE, SiteTokens, requestingSite } from './site-tokens.js';

const dirs: string[] = [];
function tokens(now = { t: 1_000_000 }, dataDir?: string) {
  const dir = dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-site-tokens-'));
  dirs.push(dir);
  return { now, dir, t: new SiteTokens({ dataDir: dir, clock: { now: () => now.t }, ttlMs: 60_000 }) };
}
afterEach(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

describe('SiteTokens', () => {
  it('verifies its own token to the site, until it expires', () => {
    const { t, now } = tokens();
    const token = t.issue('https://news.example');
    expect(t.verify(token)).toBe('https://news.example');
    now.t += 59_999;
    expect(t.verify(token)).toBe('https://news.example');
    now.t += 1;
    expect(t.verify(token)).toBeNull();
  });

  it('refuses forged, altered and malformed tokens', () => {
    const { t } = tokens();
    const token = t.issue('https://news.example');
    const [payload, mac] = token.split('.');
    const other = Buffer.from(JSON.stringify({ s: 'https://forged.example', e: 9e15 })).toString('base64url');
    expect(t.verify(`${other}.${mac}`)).toBeNull();
    expect(t.verify(`${payload}.${mac!.slice(0, -2)}AA`)).toBeNull();
    expect(t.verify(`${payload}.${mac}.x`)).toBeNull();
    for (const junk of [undefined, '', '.', 'abc', 'a.b', `${payload}.`]) expect(t.verify(junk)).toBeNull();
    // Another server's key signs nothing here.
    expect(tokens().t.verify(token)).toBeNull();
  });

  it('keeps its key in the data folder, mode 0600, and reads it back after a restart', () => {
    const first = tokens();
    const token = first.t.issue('https://news.example');
    const file = path.join(first.dir, SITE_TOKEN_FILE);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const restarted = new SiteTokens({ dataDir: first.dir, clock: { now: () => first.now.t } });
    expect(restarted.verify(token)).toBe('https://news.example');
  });
});

describe('requestingSite', () => {
  it('takes the Origin header, else the Referer\'s origin, and only http(s)', () => {
    expect(requestingSite('https://a.example', 'https://b.example/page')).toBe('https://a.example');
    expect(requestingSite(undefined, 'https://b.example:8443/news/today?x=1')).toBe('https://b.example:8443');
    expect(requestingSite('null', 'http://c.example/')).toBe('http://c.example');
    expect(requestingSite(undefined, 'file:///home/me/page.html')).toBeNull();
    expect(requestingSite(undefined, undefined)).toBeNull();
  });
});

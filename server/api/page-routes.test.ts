import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SiteTokens } from '../auth/site-tokens.js';
import { SITE_TOKEN_PLACEHOLDER, pageRouter } from './page-routes.js';

describe('/widget.js', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-pages-'));
  const tokens = new SiteTokens({ dataDir: dir, clock: { now: () => Date.now() } });
  let server: http.Server;
  let base = '';

  beforeAll(async () => {
    // As the built loader holds it: the placeholder in a string literal, once.
    fs.writeFileSync(path.join(dir, 'widget.js'), `(()=>{const f="/widget/frame#site-token=${SITE_TOKEN_PLACEHOLDER}";})();`);
    const app = express().use(pageRouter({ clientDist: dir, siteTokens: tokens }));
    server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const tokenIn = (body: string) => /site-token=([^"]*)"/.exec(body)?.[1];

  it('carries a token signed for the page that loaded it, privately cached and varying by Origin and Referer', async () => {
    const res = await fetch(`${base}/widget.js`, { headers: { referer: 'https://news.example/2024/story?id=7' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/javascript/);
    expect(res.headers.get('cache-control')).toBe('private, max-age=300');
    expect(res.headers.get('vary')).toMatch(/Origin, Referer/);
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    const body = await res.text();
    expect(body).not.toContain(SITE_TOKEN_PLACEHOLDER);
    expect(tokens.verify(tokenIn(body))).toBe('https://news.example');
  });

  it('prefers the Origin header, and names no site when neither header does', async () => {
    const both = await (await fetch(`${base}/widget.js`, { headers: { origin: 'https://a.example', referer: 'https://b.example/' } })).text();
    expect(tokens.verify(tokenIn(both))).toBe('https://a.example');
    const none = await (await fetch(`${base}/widget.js`)).text();
    expect(tokenIn(none)).toBe('');
    expect(none).not.toContain(SITE_TOKEN_PLACEHOLDER);
  });
});

import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SiteTokens } from '../auth/site-tokens.js';
import { ORT_PATH } from '../../shared/ort-path.js';
import { SITE_TOKEN_PLACEHOLDER, ortDist, pageRouter } from './page-routes.js';

/** Serves `router` on a free port for the tests of one describe block; resolves to its base URL. */
async function serve(router: express.Router): Promise<{ base: string; close: () => Promise<void> }> {
  const server = http.createServer(express().use(router));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

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

describe('onnxruntime-web\'s files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-pages-'));
  let installed: Awaited<ReturnType<typeof serve>>;
  let otherVersion: Awaited<ReturnType<typeof serve>>;

  beforeAll(async () => {
    installed = await serve(pageRouter({ clientDist: dir }));
    // A dist/ folder whose package.json names another version than ORT_PATH does.
    const fake = path.join(dir, 'onnxruntime-web', 'dist');
    fs.mkdirSync(fake, { recursive: true });
    fs.writeFileSync(path.join(fake, '..', 'package.json'), JSON.stringify({ name: 'onnxruntime-web', version: '0.0.1' }));
    fs.writeFileSync(path.join(fake, 'ort.min.mjs'), 'export {};');
    otherVersion = await serve(pageRouter({ clientDist: dir, ortDir: fake }));
  });
  afterAll(async () => {
    await installed.close();
    await otherVersion.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves them at the versioned ORT_PATH, cached for a year without revalidation', async () => {
    const glue = await fetch(`${installed.base}${ORT_PATH}ort-wasm-simd-threaded.mjs`);
    expect(glue.status).toBe(200);
    expect(glue.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(glue.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await glue.text()).toBe(fs.readFileSync(path.join(ortDist(), 'ort-wasm-simd-threaded.mjs'), 'utf8'));
    const wasm = await fetch(`${installed.base}${ORT_PATH}ort-wasm-simd-threaded.wasm`, { method: 'HEAD' });
    expect(wasm.status).toBe(200);
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
    expect(wasm.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it('still answers the unversioned /ort/, revalidated on every load', async () => {
    const res = await fetch(`${installed.base}/ort/ort-wasm-simd-threaded.mjs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=0');
  });

  it('answers 404 for a file onnxruntime-web does not have, under either path', async () => {
    expect((await fetch(`${installed.base}${ORT_PATH}no-such-file.wasm`)).status).toBe(404);
    expect((await fetch(`${installed.base}/ort/no-such-file.wasm`)).status).toBe(404);
    expect((await fetch(`${installed.base}${ORT_PATH}`)).status).toBe(404);
  });

  it('does not cache for good files that are not the version ORT_PATH names', async () => {
    const res = await fetch(`${otherVersion.base}${ORT_PATH}ort.min.mjs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=0');
  });
});

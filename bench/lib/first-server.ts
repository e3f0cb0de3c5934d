/**
 * For the first-result benchmark: the real TabGrid server of a given checkout (this one, or an older commit's
 * tree for a before/after in one run), each with its own data folder, and a host page on another site that
 * embeds that server's widget with one line, as a site owner would.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApiClient } from '../../cli/api-client.js';
import { Child } from './proc.js';

export interface FirstServer {
  /** What the figures are labelled with: "current" or "baseline". */
  label: string;
  root: string;
  url: string;
  api: ApiClient;
  /** A page on another site (localhost, while the server is 127.0.0.1) with the widget's script tag. */
  hostUrl: string;
  stop(): Promise<void>;
}

/** Builds `root`'s client with its own vite when its dist/client is missing (a baseline tree). */
export async function buildClientAt(root: string): Promise<void> {
  if (fs.existsSync(path.join(root, 'dist', 'client', 'index.html'))) return;
  await promisify(execFile)(process.execPath, [path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], { cwd: root });
}

/**
 * Starts `root`'s bench/lib/serve.ts with a fresh data folder. The caps that bound strangers from one network are
 * raised (every volunteer here comes from 127.0.0.1), but vetting keeps its defaults: each run's volunteer is a
 * newcomer, as a first visitor is.
 */
export async function startFirstServer(label: string, root: string): Promise<FirstServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-first-'));
  const apiKey = `bench-${randomBytes(12).toString('hex')}`;
  const child = new Child(path.join(root, 'bench', 'lib', 'serve.ts'), [], {
    env: {
      PORT: '0', HOST: '127.0.0.1', TABGRID_DATA: dataDir, TABGRID_API_KEY: apiKey, LOG_LEVEL: 'warn',
      TABGRID_MAX_CONNECTIONS_PER_ORIGIN: '100000', TABGRID_NEWCOMER_LEASES_PER_ORIGIN: '100000', TABGRID_RATE_LIMIT: '1000000',
    },
    label: `server ${label}`,
  });
  const [, url] = await child.line(/TabGrid is running at (http:\/\/\S+?)\/?$/);
  const host = http.createServer((req, res) => {
    if (req.url === '/favicon.ico') {
      res.writeHead(204).end();
    } else if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>A site with the widget</title></head><body><h1>An article</h1><p>Some text a visitor reads for a minute.</p>
<script src="${url}/widget.js" async></script></body></html>`);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  return {
    label, root, url, api: new ApiClient(url, apiKey),
    hostUrl: `http://localhost:${(host.address() as AddressInfo).port}/`,
    async stop() {
      await new Promise((r) => host.close(r));
      await child.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

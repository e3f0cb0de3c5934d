/**
 * Builds the pages with Vite when dist/client is missing (npm install's `prepare` normally has).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CLIENT_DIST, ROOT } from '../server/app.js';

export async function ensureClientBuilt(say: (s: string) => void): Promise<void> {
  if (fs.existsSync(path.join(CLIENT_DIST, 'index.html'))) return;
  say('building the volunteer page (first start)…');
  const { build } = await import('vite');
  await build({ configFile: path.join(ROOT, 'vite.config.ts'), logLevel: 'warn' });
}

/**
 * Makes sure dist/client holds a build of the current client sources, so browser tests never run
 * against a stale page: builds when index.html is missing or older than any file under client/, shared/ or public/.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUILT_PAGE = path.join(ROOT, 'dist', 'client', 'index.html');
const SOURCES = ['client', 'shared', 'public', 'vite.config.ts'].map((p) => path.join(ROOT, p));

function newestMtime(p: string): number {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of fs.readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, entry)));
  return newest;
}

/** Runs `vite build` when the built page is missing or older than its sources; returns whether it built. */
export async function ensureClientBuilt(): Promise<boolean> {
  const built = fs.statSync(BUILT_PAGE, { throwIfNoEntry: false });
  if (built && built.mtimeMs >= Math.max(...SOURCES.map(newestMtime))) return false;
  const vite = path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  await promisify(execFile)(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: ROOT });
  if (!fs.existsSync(BUILT_PAGE)) throw new Error(`vite build finished but ${BUILT_PAGE} is missing`);
  return true;
}

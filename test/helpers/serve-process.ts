/**
 * `tabgrid serve` as a user starts it: a child process on a free port (--port 0), its URL read from what it
 * prints.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/tabgrid.js');

export interface ServeProcess { process: ChildProcess; url: string; output: string }

/**
 * Starts `tabgrid serve --port 0 --data <dir>/data` in `dir`, with more flags and environment when given; resolves
 * once it prints where it runs.
 */
export async function startServe(dir: string, more: { args?: string[]; env?: Record<string, string> } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data', path.join(dir, 'data'), ...(more.args ?? [])], {
    cwd: dir, env: { ...process.env, LOG_LEVEL: 'warn', TABGRID_API_KEY: '', ...more.env },
  });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      output += d;
      const m = /TabGrid is running at (http:\/\/[^\s/]+)\//.exec(output);
      if (m) resolve(m[1]);
    });
    let errors = '';
    child.stderr!.on('data', (d) => { errors += d; });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${output}${errors.slice(-4000)}`)));
  });
  return { process: child, url, output };
}

/**
 * The build as users run it: the compiled `tabgrid serve` runs on Node alone and finds the pages and onnxruntime-web's
 * files from dist/node/; bin/tabgrid.js runs the build, or the sources when the build is missing or older than
 * them; and `npm start` under a process manager hands SIGTERM on to the server.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ORT_PATH } from '../../shared/ort-path.js';
import { ensureClientBuilt } from '../helpers/build-client.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);

interface Started { child: ChildProcess; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; output: () => string }

/** Spawns a command, listening for its exit from the start so that no exit can be missed. */
function start(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): Started {
  const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, LOG_LEVEL: 'info', TABGRID_API_KEY: '', ...opts.env } });
  let output = '';
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, exit, output: () => output };
}

/** Resolves to the URL `tabgrid serve` prints once it listens; rejects if the process exits first. */
function servingAt(s: Started): Promise<string> {
  return new Promise((resolve, reject) => {
    const look = () => {
      const m = /TabGrid is running at (http:\/\/[^\s/]+)\//.exec(s.output());
      if (m) resolve(m[1]);
    };
    s.child.stdout!.on('data', look);
    look();
    void s.exit.then(({ code, signal }) => reject(new Error(`exited (${code ?? signal}) before serving:\n${s.output()}`)));
  });
}

/** Whether anything still accepts connections at `url`. */
const listening = (url: string) => fetch(`${url}/api/v1/health`).then(() => true, () => false);

/** The command line of process `pid`, or null once it is gone. */
const commandOf = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return null;
  }
};

/**
 * The processes below `pid` (its children, theirs...) that run bin/tabgrid.js, from /proc: the server, and the
 * `sh -c` npm runs it through. (Not esbuild's service, which tsx starts and which stops on its own after the server.)
 */
function tabgridBelow(pid: number): number[] {
  const children = (p: number): number[] => fs.readdirSync(`/proc/${p}/task`).flatMap((t) => {
    const list = fs.readFileSync(`/proc/${p}/task/${t}/children`, 'utf8').trim();
    return list ? list.split(/\s+/).map(Number) : [];
  });
  const all: number[] = [];
  for (let queue = children(pid); queue.length > 0;) {
    const p = queue.shift()!;
    all.push(p);
    queue = queue.concat(children(p));
  }
  return all.filter((p) => commandOf(p)?.includes('bin/tabgrid.js'));
}

/** Processes a failing test may leave running, with their command lines: killed at the end if still the same. */
const leftovers = new Map<number, string | null>();
const mayOutlive = (pid: number) => leftovers.set(pid, commandOf(pid));
afterAll(() => {
  for (const [pid, cmd] of leftovers) if (cmd !== null && commandOf(pid) === cmd) process.kill(pid, 'SIGKILL');
});

describe('the compiled server', () => {
  // Compiled into a folder of its own inside the checkout, so node_modules and the built pages are found as from
  // dist/node/, and a concurrent `npm run build` is left alone.
  let out = '';
  let dir = '';
  afterAll(() => {
    if (out) fs.rmSync(out, { recursive: true, force: true });
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeAll(async () => {
    fs.mkdirSync(path.join(ROOT, 'dist'), { recursive: true });
    out = fs.mkdtempSync(path.join(ROOT, 'dist', 'node-test-'));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-build-'));
    await ensureClientBuilt();
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', out], { cwd: ROOT }).catch((err: { stdout?: string }) => {
      throw new Error(`tsc -p tsconfig.build.json failed:\n${err.stdout ?? String(err)}`);
    });
  });

  it('serves the pages, the API and onnxruntime-web\'s files with Node alone, and stops on SIGTERM', async () => {
    expect(fs.existsSync(path.join(out, 'cli', 'main.js'))).toBe(true);
    expect(fs.existsSync(path.join(out, 'server', 'main.js'))).toBe(true);
    // No loader: a .ts file imported at run time, or a path that only holds from the sources, fails here.
    const s = start(process.execPath, [path.join(out, 'cli', 'main.js'), 'serve', '--port', '0', '--data', path.join(dir, 'data')], { cwd: dir });
    mayOutlive(s.child.pid!);
    const url = await servingAt(s);

    expect((await fetch(`${url}/api/v1/health`)).status).toBe(200);
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const ort = await fetch(`${url}${ORT_PATH}ort-wasm-simd-threaded.mjs`);
    expect(ort.status).toBe(200);
    expect(ort.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');

    s.child.kill('SIGTERM');
    expect(await s.exit).toEqual({ code: 0, signal: null });
    expect(s.output()).toContain('shutting down');
    expect(await listening(url)).toBe(false);
  });
});

describe('npm start', () => {
  let dir = '';
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-start-')); });
  afterAll(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  it('hands SIGTERM to the server, which stops gracefully before npm exits', async () => {
    // As a process manager runs it: flags after `--`, the data folder from the environment.
    const s = start('npm', ['start', '--', '--port', '0'], { cwd: ROOT, env: { TABGRID_DATA: path.join(dir, 'data') } });
    const url = await servingAt(s);
    const server = tabgridBelow(s.child.pid!);
    for (const pid of server) mayOutlive(pid);
    expect(server.length).toBeGreaterThan(0);

    s.child.kill('SIGTERM');
    // npm exits with the server's own status once the server has exited, not killed by the signal itself.
    expect(await s.exit).toEqual({ code: 0, signal: null });
    expect(s.output()).toContain('"signal":"SIGTERM","msg":"shutting down"');
    expect(await listening(url)).toBe(false);
    expect(server.filter((pid) => commandOf(pid) !== null)).toEqual([]);
  });
});

describe('bin/tabgrid.js', () => {
  // A checkout of its own: bin/tabgrid.js, sources and a build that each say which they are.
  let dir = '';
  const sources = () => path.join(dir, 'cli', 'main.ts');
  const built = () => path.join(dir, 'dist', 'node', 'cli', 'main.js');
  const tabgrid = () => run(process.execPath, [path.join(dir, 'bin', 'tabgrid.js')], { cwd: dir });

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-bin-'));
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.copyFileSync(path.join(ROOT, 'bin', 'tabgrid.js'), path.join(dir, 'bin', 'tabgrid.js'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'tabgrid', type: 'module' }));
  });
  afterEach(() => {
    fs.rmSync(path.join(dir, 'cli'), { recursive: true, force: true });
    fs.rmSync(path.join(dir, 'dist'), { recursive: true, force: true });
  });
  afterAll(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  /** Writes `file` with its modification time `seconds` after 1970. */
  const write = (file: string, text: string, seconds: number) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    fs.utimesSync(file, seconds, seconds);
  };
  // The sources' version has a type annotation: only tsx runs it.
  const withSources = (seconds: number) => write(sources(), "const from: string = 'sources';\nconsole.log(from);\n", seconds);
  const withBuild = (seconds: number) => write(built(), "console.log('build');\n", seconds);

  it('runs the build when it is newer than its sources, and says nothing', async () => {
    withSources(1_000_000);
    withBuild(2_000_000);
    expect(await tabgrid()).toEqual({ stdout: 'build\n', stderr: '' });
  });

  it('runs the sources through tsx, and says why, when a source changed since the build', async () => {
    withSources(3_000_000);
    withBuild(2_000_000);
    const { stdout, stderr } = await tabgrid();
    expect(stdout).toBe('sources\n');
    expect(stderr).toBe('tabgrid: cli/main.ts changed since dist/node/ was built: running the TypeScript sources through tsx (`npm run build` compiles them).\n');
  });

  it('runs the sources through tsx, and says why, when nothing is built', async () => {
    withSources(1_000_000);
    const { stdout, stderr } = await tabgrid();
    expect(stdout).toBe('sources\n');
    expect(stderr).toBe('tabgrid: dist/node/ is not built: running the TypeScript sources through tsx (`npm run build` compiles them).\n');
  });

  it('runs the build of a package installed without its sources', async () => {
    withBuild(2_000_000);
    expect(await tabgrid()).toEqual({ stdout: 'build\n', stderr: '' });
  });

  it('fails with what to do when there is neither', async () => {
    const err = await tabgrid().then(() => null, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(1);
    expect(err?.stderr).toBe('tabgrid: dist/node/ is not built, and its sources are not here: reinstall the package.\n');
  });
});

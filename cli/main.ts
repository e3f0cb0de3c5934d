/**
 * The `tabgrid` command: serve, submit, status, wait, cancel, delete, rerun, results, keys, shard, worker.
 * What the server says is printed through safeText (describe.ts), so a volunteer's error text cannot move
 * the cursor, recolour the terminal or reorder what the researcher reads.
 */
import fs from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { AppError } from '../shared/errors.js';
import { safeText } from '../shared/safe-text.js';
import { ApiError, TabGridClient } from './api-client.js';
import { describeDisk, describeJob as describe, formatBytes, keyTable } from './describe.js';
import { downloadResults } from './results.js';
import { follow, submit } from './submit.js';

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('not a number');
  return n;
};
const int = (v: string) => {
  const n = num(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('not an integer');
  return n;
};

/** 1 to 256. */
const threadCount = (v: string) => {
  const n = int(v);
  if (n < 1 || n > 256) throw new InvalidArgumentError('from 1 to 256');
  return n;
};

interface ConnOpts { server?: string; apiKey?: string }

function client(o: ConnOpts): TabGridClient {
  const server = o.server ?? process.env.TABGRID_SERVER ?? 'http://127.0.0.1:8080';
  let key = o.apiKey ?? process.env.TABGRID_API_KEY;
  if (!key && fs.existsSync('./data/admin.key')) key = fs.readFileSync('./data/admin.key', 'utf8').trim();
  return new TabGridClient(server, key);
}

const withConn = (c: Command) => c
  .option('--server <url>', 'server URL (default: TABGRID_SERVER, then http://127.0.0.1:8080)')
  .option('--api-key <key>', 'API key (default: TABGRID_API_KEY, then ./data/admin.key)');

const say = (s: string) => process.stderr.write(`${s}\n`);

const program = new Command('tabgrid')
  .description('TabGrid: volunteer GPU compute in a browser tab')
  .showHelpAfterError();

program.command('serve')
  .description('run the server: REST API, worker sockets, the volunteer page')
  .option('--port <n>', 'port (default: PORT, then 8080)', int)
  .option('--host <host>', 'address to listen on (default 127.0.0.1)')
  .option('--data <dir>', 'data folder (default: TABGRID_DATA, then ./data)')
  .option('--lease-ms <ms>', 'how long a worker may hold a task', int)
  .option('--trust-proxy', 'behind a reverse proxy: a client\'s address is the one the proxy adds to X-Forwarded-For (TABGRID_TRUST_PROXY)')
  .option('--ipv4-origin-prefix <bits>', 'IPv4 addresses in one /bits count as one network origin (default 32; 24 widens it)', int)
  .option('--max-connections-per-origin <n>', 'worker connections at once from one network origin (default 64)', int)
  .option('--audit-rate <r>', 'share of accepted results the server recomputes itself (default 0.03; five times that for young volunteers)', num)
  .option('--vet-tenure-ms <ms>', 'how old a volunteer must be before it can vouch for a quorum (default 60000)', int)
  .option('--retain-days <n>', 'delete finished (completed, failed, cancelled) jobs n days after they ended (TABGRID_RETAIN_DAYS; default: keep them)', num)
  .option('--metrics-token <token>', 'require Authorization: Bearer <token> for GET /metrics (TABGRID_METRICS_TOKEN; default: open)')
  .option('--store <url>', 'postgres://USER@HOST:PORT/DB: share the state with other servers (TABGRID_STORE; default: SQLite in the data folder)')
  .option('--public-url <url>', 'this server\'s URL as workers reach it, told to the other servers\' workers (TABGRID_PUBLIC_URL)')
  .option('--cluster-ttl-ms <ms>', 'with --store: a server silent this long is dead and its work goes to the others (default 5000)', int)
  .action(async (o: {
    port?: number; host?: string; data?: string; leaseMs?: number; trustProxy?: boolean; ipv4OriginPrefix?: number;
    maxConnectionsPerOrigin?: number; auditRate?: number; vetTenureMs?: number; retainDays?: number; metricsToken?: string;
    store?: string; publicUrl?: string; clusterTtlMs?: number;
  }) => {
    const { loadConfig } = await import('../server/config.js');
    const { ensureClientBuilt } = await import('./build-client.js');
    const { runServer } = await import('../server/main.js');
    await ensureClientBuilt(say);
    const flags = {
      port: o.port, host: o.host, dataDir: o.data, leaseMs: o.leaseMs, trustProxy: o.trustProxy, ipv4OriginPrefix: o.ipv4OriginPrefix,
      maxConnectionsPerOrigin: o.maxConnectionsPerOrigin, auditRate: o.auditRate, vetTenureMs: o.vetTenureMs, retainDays: o.retainDays,
      metricsToken: o.metricsToken, store: o.store, publicUrl: o.publicUrl, clusterTtlMs: o.clusterTtlMs,
    };
    await runServer(loadConfig(flags));
  });

withConn(program.command('submit'))
  .description('submit a batch job: a model and its inputs')
  .argument('<model>', 'ONNX model file')
  .requiredOption('--inputs <path>', '.npy file (first axis = items), a folder of <input-name>.npy, or a folder of PNG/JPEG images; float64, Fortran-order and int32 arrays are converted to what the model takes')
  .option('--batch <n>', 'items per task (default 16)', int)
  .option('--replicas <n>', 'replicas per task that must agree (default 2)', int)
  .option('--rtol <r>', 'relative tolerance (default 1e-3)', num)
  .option('--atol <a>', 'absolute tolerance (default 1e-4)', num)
  .option('--stages <n>', 'split the model into n pipeline stages, each run by different volunteers', int)
  .option('--cuts <tensors>', 'comma-separated tensor names to cut the model after (instead of --stages)')
  .option('--canary-rate <r>', 'fraction of tasks the server answers itself to test volunteers (default 0.02; 0 turns off)', num)
  .option('--no-adaptive', 'never accept a task on fewer than --replicas replicas, even from trusted volunteers')
  .option('--keep-replica-outputs', 'keep every replica\'s outputs once the job ends (by default only the verified results are kept)')
  .option('--name <name>', 'job name')
  .option('--detach', 'print the job id and return at once')
  .option('--out <dir>', 'download the results into DIR once the job completes (and write DIR/inputs-manifest.json for images)')
  .option('--resize <WxH>', 'images: resize to WIDTHxHEIGHT, bilinear (default: the model input\'s fixed size)')
  .option('--layout <nchw|nhwc>', 'images: channels first or last (default: guessed from where the model has 1, 3 or 4)')
  .option('--scale <s>', 'images: multiply pixels (0..255) by s first, e.g. 1/255 (default 1)')
  .option('--mean <m>', 'images: subtract per channel after --scale, e.g. 0.485,0.456,0.406 (default 0)')
  .option('--std <s>', 'images: divide per channel after --mean, e.g. 0.229,0.224,0.225 (default 1)')
  .action(async (model: string, o) => {
    const api = client(o);
    const job = await submit(api, model, o, say);
    if (o.detach) { process.stdout.write(`${job.id}\n`); return; }
    const end = await follow(api, job.id);
    say(describe(end));
    if (end.status === 'completed' && o.out) for (const file of await downloadResults(api, end, o.out)) say(`wrote ${file}`);
    process.stdout.write(`${job.id}\n`);
    if (end.status !== 'completed') process.exitCode = 1;
  });

withConn(program.command('status'))
  .description('show a job with the disk it holds, or every job when none is named')
  .argument('[job]')
  .option('--json', 'print JSON (a job\'s with its disk under "disk")')
  .action(async (id: string | undefined, o) => {
    const api = client(o);
    if (id) {
      const [job, disk] = await Promise.all([api.getJob(id), api.jobDisk(id)]);
      process.stdout.write(o.json ? `${JSON.stringify({ ...job, disk }, null, 2)}\n` : `${describe(job)}\n${describeDisk(disk)}\n`);
      return;
    }
    const jobs = await api.listJobs();
    if (o.json) process.stdout.write(`${JSON.stringify(jobs, null, 2)}\n`);
    else process.stdout.write(`${jobs.map(describe).join('\n\n') || 'no jobs'}\n`);
  });

withConn(program.command('wait'))
  .description('follow a job with a progress bar; exit 0 when it completes, 1 when it fails')
  .argument('<job>')
  .action(async (id: string, o) => {
    const end = await follow(client(o), id);
    say(describe(end));
    if (end.status !== 'completed') process.exitCode = 1;
  });

withConn(program.command('cancel'))
  .description('cancel a running job')
  .argument('<job>')
  .action(async (id: string, o) => {
    say(describe(await client(o).cancelJob(id)));
  });

withConn(program.command('delete'))
  .description('delete a job: its tasks, replicas, outputs and results (a running job is cancelled first)')
  .argument('<job>')
  .action(async (id: string, o) => {
    const gone = await client(o).deleteJob(id);
    say(`deleted job ${gone.id} (${gone.status}): ${formatBytes(gone.bytes)} of outputs and results freed; its models and data sets go once no job has used them for a while`);
  });

withConn(program.command('rerun'))
  .description('compute again the tasks of a job that a since-quarantined volunteer helped accept, and follow the job')
  .argument('<job>')
  .requiredOption('--tainted', 'rerun the tainted tasks (those `tabgrid status` reports)')
  .action(async (id: string, o) => {
    const api = client(o);
    const { job, reopened } = await api.rerunTainted(id);
    if (reopened === 0) {
      say(`job ${job.id} has no tainted tasks; nothing to rerun`);
      say(describe(job));
      return;
    }
    say(`reopened ${reopened} tainted task${reopened === 1 ? '' : 's'} of job ${job.id}`);
    const end = await follow(api, job.id);
    say(describe(end));
    if (end.status !== 'completed') process.exitCode = 1;
  });

withConn(program.command('infer'))
  .description('one interactive inference, answered by a warm volunteer; prints the latency and writes the outputs')
  .argument('<model>', 'ONNX model file, or the SHA-256 of a model already uploaded')
  .requiredOption('--inputs <path>', '.npy file for a one-input model, or a folder of <input-name>.npy')
  .option('--out <dir>', 'write each output as DIR/<output-name>.npy')
  .option('--repeat <n>', 'send the request n times in a row and print p50/p95', int)
  .option('--replicas <n>', '1: a vetted volunteer answers (default); 2: two volunteers of distinct origins must agree', int)
  .option('--timeout-ms <ms>', 'how long to wait for an answer (default 5000)', int)
  .action(async (model: string, o) => {
    const { runInfer } = await import('./infer.js');
    const { files } = await runInfer(client(o), model, { inputs: o.inputs, out: o.out, repeat: o.repeat, replicas: o.replicas === 2 ? 2 : 1, timeoutMs: o.timeoutMs }, say);
    for (const f of files) say(`wrote ${f}`);
  });

withConn(program.command('results'))
  .description('download a completed job\'s outputs as DIR/<output>.npy (and DIR/inputs-manifest.json when ./<job>.inputs-manifest.json is here)')
  .argument('<job>')
  .requiredOption('--out <dir>', 'folder to write into')
  .action(async (id: string, o) => {
    const api = client(o);
    const job = await api.getJob(id);
    if (job.status !== 'completed') throw new ApiError(409, 'CONFLICT', `job ${id} is ${job.status}; results are ready when it is completed`);
    for (const file of await downloadResults(api, job, o.out)) process.stdout.write(`${file}\n`);
  });

const keys = program.command('keys').description('list, create and revoke API keys (needs an admin key)');

withConn(keys.command('list'))
  .description('every API key, revoked ones included (never the keys themselves)')
  .option('--json', 'print JSON')
  .action(async (o) => {
    const list = await client(o).listKeys();
    process.stdout.write(`${o.json ? JSON.stringify(list, null, 2) : keyTable(list)}\n`);
  });

withConn(keys.command('create'))
  .description('create a key; the key is printed once, on stdout')
  .argument('<name>', 'who or what the key is for')
  .option('--admin', 'an admin key: sees every job, manages keys, lists workers')
  .action(async (name: string, o) => {
    const created = await client(o).createKey({ name, admin: Boolean(o.admin) });
    say(`created ${created.admin ? 'admin' : 'researcher'} key ${created.id} (${safeText(created.name, 100)}); it is shown only now:`);
    process.stdout.write(`${created.key}\n`);
  });

withConn(keys.command('weight'))
  .description('set a key\'s share of workers against other researchers\' running jobs (1 by default; 2 gets twice the slots)')
  .argument('<id>', 'the key id (key-...), from `tabgrid keys list`')
  .argument('<weight>', 'a positive number', num)
  .action(async (id: string, weight: number, o) => {
    const k = await client(o).setKeyWeight(id, weight);
    say(`key ${k.id} (${safeText(k.name, 100)}) now has weight ${k.weight}`);
  });

withConn(keys.command('revoke'))
  .description('revoke a key at once (the last admin key cannot be revoked)')
  .argument('<id>', 'the key id (key-...), from `tabgrid keys list`')
  .action(async (id: string, o) => {
    const k = await client(o).revokeKey(id);
    say(`revoked key ${k.id} (${safeText(k.name, 100)})`);
  });

program.command('shard')
  .description('split a model into pipeline stages: DIR/stage-1.onnx ... DIR/stage-S.onnx, checked against the whole model')
  .argument('<model>', 'ONNX model file')
  .option('--stages <n>', 'number of stages, balanced by weight bytes', int)
  .option('--cuts <tensors>', 'comma-separated tensor names to cut after (instead of --stages)')
  .requiredOption('--out <dir>', 'folder to write the stages into')
  .action(async (model: string, o: { stages?: number; cuts?: string; out: string }) => {
    const { shardCommand } = await import('./shard.js');
    await shardCommand(model, o, (s) => process.stdout.write(`${s}\n`));
  });

program.command('worker')
  .description('donate this machine: run tasks with onnxruntime-node (CPU)')
  .option('--server <urls>', 'server URL, or several separated by commas: when one cannot be reached the next is tried in turn (default: TABGRID_SERVER, then http://127.0.0.1:8080)')
  .option('--slots <n>', 'tasks to hold at once (default: as many as keep it busy while results are acknowledged, 2 to 8)', int)
  .option('--token <token>', 'volunteer token (your identity, credit and reputation)')
  .option('--token-file <file>', 'where to keep the token between runs (default ~/.config/tabgrid/worker-token)')
  .option('--ephemeral', 'a new identity for this run only')
  .option('--bind <address>', 'local address to connect from (a machine with several addresses; websocket only)')
  .option('--threads <n>', 'cores one run may use (onnxruntime\'s threads; default: every core): donate part of the machine', threadCount)
  .action(async (o: { server?: string; slots?: number; token?: string; tokenFile?: string; ephemeral?: boolean; bind?: string; threads?: number }) => {
    const { runWorker } = await import('./worker.js');
    await runWorker({ ...o, server: o.server ?? process.env.TABGRID_SERVER ?? 'http://127.0.0.1:8080' }, say);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof ApiError) {
    say(`tabgrid: ${safeText(err.message)}${err.code && err.status ? ` (${err.code})` : ''}`);
    process.exitCode = 1;
  } else if (err instanceof AppError) {
    // Refused here, before or while sending: nothing the server said.
    say(`tabgrid: ${safeText(err.message)}`);
    process.exitCode = 1;
  } else throw err;
}

/**
 * The `tabgrid` command: serve, submit, status, wait, results, worker.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { JobView } from '../shared/protocol.js';
import { ApiClient, ApiError } from './api-client.js';
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

interface ConnOpts { server?: string; apiKey?: string }

function client(o: ConnOpts): ApiClient {
  const server = o.server ?? process.env.TABGRID_SERVER ?? 'http://127.0.0.1:8080';
  let key = o.apiKey ?? process.env.TABGRID_API_KEY;
  if (!key && fs.existsSync('./data/admin.key')) key = fs.readFileSync('./data/admin.key', 'utf8').trim();
  return new ApiClient(server, key);
}

const withConn = (c: Command) => c
  .option('--server <url>', 'server URL (default: TABGRID_SERVER, then http://127.0.0.1:8080)')
  .option('--api-key <key>', 'API key (default: TABGRID_API_KEY, then ./data/admin.key)');

const say = (s: string) => process.stderr.write(`${s}\n`);

function describe(job: JobView): string {
  const t = job.tasks;
  const lines = [
    `job ${job.id}${job.name ? ` (${job.name})` : ''}: ${job.status}`,
    `  items ${job.items} · batch ${job.batchSize} · tasks ${t.done}/${t.total} done, ${t.running} running, ${t.pending} pending, ${t.failed} failed`,
    `  replicas ${job.replicas} (up to ${job.maxReplicas}) · issued ${job.replicasIssued} · rtol ${job.rtol} atol ${job.atol}`,
    `  outputs ${job.outputs.map((o) => `${o.name} ${o.dtype}[${o.shape.join(',')}]`).join(', ')}`,
  ];
  if (job.stages.length > 1) {
    for (const s of job.stages) lines.push(`  stage ${s.stage + 1}/${job.stages.length}: ${s.done}/${s.total} done, ${s.running} running, ${s.pending} pending, ${s.failed} failed`);
  }
  if (job.error) lines.push(`  error: ${job.error}`);
  for (const f of job.failures.slice(0, 5)) lines.push(`  batch ${f.batch} failed: ${f.reason}`);
  return lines.join('\n');
}

const program = new Command('tabgrid')
  .description('TabGrid: volunteer GPU compute in a browser tab')
  .showHelpAfterError();

program.command('serve')
  .description('run the server: REST API, worker sockets, the volunteer page')
  .option('--port <n>', 'port (default: PORT, then 8080)', int)
  .option('--host <host>', 'address to listen on (default 127.0.0.1)')
  .option('--data <dir>', 'data folder (default: TABGRID_DATA, then ./data)')
  .option('--lease-ms <ms>', 'how long a worker may hold a task', int)
  .action(async (o: { port?: number; host?: string; data?: string; leaseMs?: number }) => {
    const { loadConfig } = await import('../server/config.js');
    const { ensureClientBuilt } = await import('./build-client.js');
    const { runServer } = await import('../server/main.js');
    await ensureClientBuilt(say);
    await runServer(loadConfig({ port: o.port, host: o.host, dataDir: o.data, leaseMs: o.leaseMs }));
  });

withConn(program.command('submit'))
  .description('submit a batch job: a model and its inputs')
  .argument('<model>', 'ONNX model file')
  .requiredOption('--inputs <path>', '.npy file (first axis = items), or a folder of <input-name>.npy')
  .option('--batch <n>', 'items per task (default 16)', int)
  .option('--replicas <n>', 'replicas per task that must agree (default 2)', int)
  .option('--rtol <r>', 'relative tolerance (default 1e-3)', num)
  .option('--atol <a>', 'absolute tolerance (default 1e-4)', num)
  .option('--stages <n>', 'split the model into n pipeline stages, each run by different volunteers', int)
  .option('--cuts <tensors>', 'comma-separated tensor names to cut the model after (instead of --stages)')
  .option('--canary-rate <r>', 'fraction of tasks the server answers itself to test volunteers (default 0.02; 0 turns off)', num)
  .option('--no-adaptive', 'never accept a task on fewer than --replicas replicas, even from trusted volunteers')
  .option('--name <name>', 'job name')
  .option('--detach', 'print the job id and return at once')
  .action(async (model: string, o) => {
    const api = client(o);
    const job = await submit(api, model, o, say);
    if (o.detach) { process.stdout.write(`${job.id}\n`); return; }
    const end = await follow(api, job.id);
    say(describe(end));
    process.stdout.write(`${job.id}\n`);
    if (end.status !== 'completed') process.exitCode = 1;
  });

withConn(program.command('status'))
  .description('show a job, or every job when none is named')
  .argument('[job]')
  .option('--json', 'print JSON')
  .action(async (id: string | undefined, o) => {
    const api = client(o);
    const jobs = id ? [await api.getJob(id)] : await api.listJobs();
    if (o.json) process.stdout.write(`${JSON.stringify(id ? jobs[0] : jobs, null, 2)}\n`);
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

withConn(program.command('results'))
  .description('download a completed job\'s outputs as DIR/<output>.npy')
  .argument('<job>')
  .requiredOption('--out <dir>', 'folder to write into')
  .action(async (id: string, o) => {
    const api = client(o);
    const job = await api.getJob(id);
    if (job.status !== 'completed') throw new ApiError(409, 'CONFLICT', `job ${id} is ${job.status}; results are ready when it is completed`);
    fs.mkdirSync(o.out, { recursive: true });
    for (const out of job.outputs) {
      const bytes = await api.result(id, out.name);
      const file = path.join(o.out, `${out.name.replace(/[^\w.-]/g, '_')}.npy`);
      fs.writeFileSync(file, bytes);
      process.stdout.write(`${file}\n`);
    }
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
  .option('--server <url>', 'server URL (default: TABGRID_SERVER, then http://127.0.0.1:8080)')
  .option('--slots <n>', 'tasks to hold at once (default 2)', int)
  .option('--token <token>', 'volunteer token (your identity, credit and reputation)')
  .option('--token-file <file>', 'where to keep the token between runs (default ~/.config/tabgrid/worker-token)')
  .option('--ephemeral', 'a new identity for this run only')
  .action(async (o: { server?: string; slots?: number; token?: string; tokenFile?: string; ephemeral?: boolean }) => {
    const { runWorker } = await import('./worker.js');
    await runWorker({ ...o, server: o.server ?? process.env.TABGRID_SERVER ?? 'http://127.0.0.1:8080' }, say);
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof ApiError) {
    say(`tabgrid: ${err.message}${err.code && err.status ? ` (${err.code})` : ''}`);
    process.exitCode = 1;
  } else throw err;
}

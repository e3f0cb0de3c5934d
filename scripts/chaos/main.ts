/**
 * `npm run chaos [-- --workers 20 --liars 0.2 --tasks 500 --kills 2 --sleepers 6 --saboteurs 4 --hoarders 4]`:
 * the chaos run, printed as a report. Exits non-zero when a wrong output was accepted, a result was lost, or the
 * job did not complete.
 */
import { Command } from 'commander';
import { DEFAULT_CHAOS, formatReport, runChaos } from './run.js';

const o = new Command('chaos')
  .option('--workers <n>', 'volunteers, each on a loopback address of its own', Number, DEFAULT_CHAOS.workers)
  .option('--liars <fraction>', 'fraction of the volunteers that lies', Number, DEFAULT_CHAOS.liarFraction)
  .option('--sleepers <n>', 'attackers on 127.0.0.1 that collude after some honest answers', Number, DEFAULT_CHAOS.sleepers)
  .option('--sleeper-honest <n>', 'honest answers a sleeper gives first', Number, DEFAULT_CHAOS.sleeperHonestFor)
  .option('--saboteurs <n>', 'attackers on 127.0.0.1 that report an error for every task, a fresh identity every two', Number, DEFAULT_CHAOS.saboteurs)
  .option('--hoarders <n>', 'attackers on 127.0.0.1 that hold every lease they can get and answer none', Number, DEFAULT_CHAOS.hoarders)
  .option('--tasks <n>', 'tasks in the job', Number, DEFAULT_CHAOS.tasks)
  .option('--kills <n>', 'server SIGKILLs during the job', Number, DEFAULT_CHAOS.kills)
  .option('--lease-ms <n>', 'the server\'s lease', Number, DEFAULT_CHAOS.leaseMs)
  .option('--vet-tenure-ms <n>', 'the server\'s vetting tenure (TABGRID_VET_TENURE_MS; default: the server\'s)', Number)
  .option('--audit-rate <r>', 'the server\'s audit rate (TABGRID_AUDIT_RATE; default: the server\'s)', Number)
  .option('--seed <n>', 'random seed', Number, DEFAULT_CHAOS.seed)
  .parse()
  .opts<{
  workers: number; liars: number; sleepers: number; sleeperHonest: number; saboteurs: number; hoarders: number; tasks: number; kills: number;
  leaseMs: number; vetTenureMs?: number; auditRate?: number; seed: number;
}>();

const report = await runChaos({
  workers: o.workers, liarFraction: o.liars, sleepers: o.sleepers, sleeperHonestFor: o.sleeperHonest, saboteurs: o.saboteurs,
  hoarders: o.hoarders, tasks: o.tasks, kills: o.kills, leaseMs: o.leaseMs, vetTenureMs: o.vetTenureMs, auditRate: o.auditRate, seed: o.seed,
  log: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(`${formatReport(report)}\n`);
const ok = report.completed && report.wrongAccepted === 0 && report.resultsLost === 0;
process.exitCode = ok ? 0 : 1;

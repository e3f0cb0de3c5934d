/**
 * `npm run chaos [-- --workers 20 --liars 0.2 --tasks 500 --kills 2]`: the chaos run, printed as a report.
 * Exits non-zero when a wrong output was accepted, a result was lost, or the job did not complete.
 */
import { Command } from 'commander';
import { DEFAULT_CHAOS, formatReport, runChaos } from './run.js';

const o = new Command('chaos')
  .option('--workers <n>', 'volunteers', Number, DEFAULT_CHAOS.workers)
  .option('--liars <fraction>', 'fraction that lies', Number, DEFAULT_CHAOS.liarFraction)
  .option('--sleepers <n>', 'extra workers that collude after three honest answers', Number, DEFAULT_CHAOS.sleepers)
  .option('--tasks <n>', 'tasks in the job', Number, DEFAULT_CHAOS.tasks)
  .option('--kills <n>', 'server SIGKILLs during the job', Number, DEFAULT_CHAOS.kills)
  .option('--seed <n>', 'random seed', Number, DEFAULT_CHAOS.seed)
  .parse()
  .opts<{ workers: number; liars: number; sleepers: number; tasks: number; kills: number; seed: number }>();

const report = await runChaos({
  workers: o.workers, liarFraction: o.liars, sleepers: o.sleepers, tasks: o.tasks, kills: o.kills, seed: o.seed,
  log: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write(`${formatReport(report)}\n`);
const ok = report.completed && report.wrongAccepted === 0 && report.resultsLost === 0;
process.exitCode = ok ? 0 : 1;

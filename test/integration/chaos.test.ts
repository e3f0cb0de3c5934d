/**
 * A shortened chaos run (the full one is `npm run chaos`): a real server killed with SIGKILL mid-job and a
 * swarm in which a fifth lie, some colluding. No wrong output may be accepted and no result lost.
 */
import { expect, it } from 'vitest';
import { runChaos } from '../../scripts/chaos/run.js';

it('accepts no wrong output and loses no result through liars, dying workers and a killed server', async () => {
  const r = await runChaos({ workers: 10, liarFraction: 0.2, tasks: 80, kills: 1, leaseMs: 2000, seed: 3, timeoutMs: 150_000 });
  expect(r.completed).toBe(true);
  expect(r.kills).toBe(1);
  expect(r.wrongSubmitted).toBeGreaterThan(0);
  expect(r.wrongAccepted).toBe(0);
  expect(r.acknowledged).toBeGreaterThan(80);
  expect(r.resultsLost).toBe(0);
  expect(r.liarsQuarantined).toBe(r.liars);
  expect(r.honestQuarantined).toBe(0);
}, 180_000);

it('completes a job with right outputs through sleepers, saboteurs and hoarders behind one address', async () => {
  const r = await runChaos({
    workers: 6, liarFraction: 0, sleepers: 4, saboteurs: 3, hoarders: 3, tasks: 60, kills: 0, leaseMs: 2000, seed: 5, timeoutMs: 60_000,
  });
  expect(r.completed).toBe(true);
  expect(r.wrongAccepted).toBe(0);
  expect(r.resultsLost).toBe(0);
  // The attackers did attack: lies, error reports, leases held and never answered.
  expect(r.sleeperLies).toBeGreaterThan(0);
  expect(r.errorsReported).toBeGreaterThan(0);
  expect(r.leasesHoarded).toBeGreaterThan(0);
  expect(r.mostHeldByOneHoarder).toBeLessThanOrEqual(2);
  expect(r.rawErrorTexts).toBe(0);
  expect(r.honestQuarantined).toBe(0);
}, 90_000);

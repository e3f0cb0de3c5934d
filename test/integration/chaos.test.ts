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

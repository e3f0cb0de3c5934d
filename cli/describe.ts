/**
 * How the CLI prints jobs and keys. Every string the server relays from someone else (a job's error, a failed
 * batch's reason, names) goes through safeText: escape sequences and bidi controls are shown, not obeyed.
 */
import type { JobView } from '../shared/protocol.js';
import type { ApiKeyView, JobDiskView } from '../shared/rest-types.js';
import { safeText } from '../shared/safe-text.js';

/** A job as `tabgrid status` prints it. */
export function describeJob(job: JobView): string {
  const t = job.tasks;
  const lines = [
    `job ${job.id}${job.name ? ` (${safeText(job.name, 200)})` : ''}: ${job.status}`,
    `  items ${job.items} · batch ${job.batchSize} · tasks ${t.done}/${t.total} done, ${t.running} running, ${t.pending} pending, ${t.failed} failed`,
    `  replicas ${job.replicas} (up to ${job.maxReplicas}) · issued ${job.replicasIssued} · rtol ${job.rtol} atol ${job.atol}`,
    `  outputs ${safeText(job.outputs.map((o) => `${o.name} ${o.dtype}[${o.shape.join(',')}]`).join(', '))}`,
  ];
  if (job.stages.length > 1) {
    for (const s of job.stages) lines.push(`  stage ${s.stage + 1}/${job.stages.length}: ${s.done}/${s.total} done, ${s.running} running, ${s.pending} pending, ${s.failed} failed`);
  }
  if (job.tainted > 0) {
    lines.push(`  ${job.tainted} task${job.tainted === 1 ? '' : 's'} tainted (accepted with a volunteer since quarantined): run \`tabgrid rerun ${job.id} --tainted\``);
  }
  if (job.error) lines.push(`  error: ${safeText(job.error)}`);
  for (const f of job.failures.slice(0, 5)) lines.push(`  batch ${f.batch} failed: ${safeText(f.reason)}`);
  return lines.join('\n');
}

/** Bytes as people read them: 1023 B, 1.5 KiB, 12.0 MiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v.toFixed(1)} ${units[u]}`;
}

/** The disk a job holds, as `tabgrid status JOB` prints it under the job. */
export function describeDisk(d: JobDiskView): string {
  const file = (kind: string) => d.files.filter((f) => f.kind === kind)
    .map((f) => `${f.hash.slice(0, 12)}… ${formatBytes(f.size)}${f.shared ? ' (shared)' : ''}`).join(', ') || '-';
  return [
    `  disk ${formatBytes(d.own)} its own · outputs ${formatBytes(d.outputs)}${d.keepReplicaOutputs ? ' (every replica\'s kept)' : ''} · results ${formatBytes(d.results)}`,
    `  models ${file('model')} · data ${file('dataset')}`,
  ].join('\n');
}

const when = (at: number | null) => (at === null ? '-' : new Date(at).toISOString().replace('T', ' ').slice(0, 16));

/** API keys as a table: id, name, role, fair-share weight, created, revoked. */
export function keyTable(keys: ApiKeyView[]): string {
  const rows = [['ID', 'NAME', 'ROLE', 'WEIGHT', 'CREATED (UTC)', 'REVOKED (UTC)'],
    ...keys.map((k) => [k.id, safeText(k.name, 100), k.admin ? 'admin' : 'researcher', String(k.weight), when(k.createdAt), when(k.revokedAt)])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

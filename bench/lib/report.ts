/**
 * Flags and printing shared by the bench/ commands: numeric flags with bounds (every run is bounded in
 * count and time), a machine line (the figures are ratios, but the reader should know the machine), and
 * a closing JSON line that BENCHMARKS.md quotes from.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';

export interface NumFlag { default: number; min: number; max: number; help: string }

/** Parses `--name value` numeric flags (and `--help`); out-of-range values are refused, not clamped. */
export function numericFlags<K extends string>(
  command: string, spec: Record<K, NumFlag>, extra: Record<string, { type: 'boolean' | 'string'; help: string; default?: string | boolean }> = {},
): { n: Record<K, number>; s: Record<string, string | boolean | undefined> } {
  const options: Record<string, { type: 'string' | 'boolean'; default?: string | boolean }> = { help: { type: 'boolean' } };
  for (const k of Object.keys(spec)) options[k] = { type: 'string' };
  for (const [k, v] of Object.entries(extra)) options[k] = { type: v.type, ...(v.default !== undefined ? { default: v.default } : {}) };
  const { values } = parseArgs({ options, allowPositionals: false });
  if (values.help) {
    const lines = [`usage: ${command} [flags]`];
    for (const [k, v] of Object.entries(spec) as [K, NumFlag][]) lines.push(`  --${k} N  ${v.help} (default ${v.default}, ${v.min}..${v.max})`);
    for (const [k, v] of Object.entries(extra)) lines.push(`  --${k}${v.type === 'string' ? ' S' : ''}  ${v.help}`);
    process.stdout.write(`${lines.join('\n')}\n`);
    process.exit(0);
  }
  const n = {} as Record<K, number>;
  for (const [k, v] of Object.entries(spec) as [K, NumFlag][]) {
    const raw = values[k];
    const x = raw === undefined ? v.default : Number(raw);
    if (!Number.isFinite(x) || x < v.min || x > v.max) throw new Error(`--${k} must be a number in ${v.min}..${v.max}, got ${String(raw)}`);
    n[k] = x;
  }
  const s: Record<string, string | boolean | undefined> = {};
  for (const k of Object.keys(extra)) s[k] = values[k] as string | boolean | undefined;
  return { n, s };
}

export function machineLine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}

export const fmt = {
  rate: (x: number) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1)),
  pct: (x: number) => `${(x * 100).toFixed(1)}%`,
  ratio: (x: number) => x.toFixed(2),
  mib: (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`,
  kib: (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`,
  ms: (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`,
};

export function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** The closing line every bench/ command prints: `RESULT {json}`. */
export function result(name: string, figures: Record<string, unknown>): void {
  say(`RESULT ${JSON.stringify({ bench: name, at: new Date().toISOString(), machine: machineLine(), ...figures })}`);
}

/** Percentile of a sorted-on-demand sample (nearest rank). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

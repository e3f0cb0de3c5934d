/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): where the busy time went, by function (self time),
 * by package or source file (self time), and by TabGrid function including what it calls.
 *
 *   npm run bench:profile -- FILE.cpuprofile [--top 25]
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './lib/proc.js';

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[] }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export interface ProfileSummary {
  file: string;
  /** Busy milliseconds sampled (idle excluded). */
  busyMs: number;
  idleMs: number;
  top: { name: string; selfPct: number }[];
  groups: { name: string; selfPct: number }[];
  inclusive: { name: string; pct: number }[];
  lines: string[];
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/** "better-sqlite3", "socket.io-parser", "node:net", "server/scheduler/scheduler.ts", "(native)". */
function groupOf(f: CallFrame): string {
  if (SPECIAL.has(f.functionName)) return f.functionName;
  const url = f.url;
  if (!url) return '(native / V8 builtins)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  // A page's profile (bench:worker --profile): scripts by path, WebAssembly (onnxruntime's kernels) as one.
  if (url.startsWith('wasm://')) return '(WebAssembly)';
  if (/^https?:/.test(url)) return new URL(url).pathname.replace(/-[\w-]{8}\.js$/, '.js');
  const file = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = file.slice(nm + 'node_modules/'.length).split('/');
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  return path.relative(ROOT, file) || file;
}

function nameOf(f: CallFrame): string {
  if (SPECIAL.has(f.functionName)) return f.functionName;
  const g = groupOf(f);
  // Sources run through tsx are transformed, so their line numbers are not the file's: name the file only.
  const line = /^(server|shared|client|cli|bench|test)\//.test(g) ? '' : `:${f.lineNumber + 1}`;
  return `${f.functionName || '(anonymous)'} ${g}${line}`;
}

/** Reads and summarises a profile; `lines` is the printable report. */
export function summarizeProfile(file: string, opts: { top?: number } = {}): ProfileSummary {
  const top = opts.top ?? 25;
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map<string, number>();
  const groups = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the following interval to it instead.
    const dt = (prof.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(prof.samples[i]);
    if (!node) continue;
    const f = node.callFrame;
    if (f.functionName === '(idle)') { idle += dt; continue; }
    busy += dt;
    const key = nameOf(f);
    self.set(key, (self.get(key) ?? 0) + dt);
    const g = groupOf(f);
    groups.set(g, (groups.get(g) ?? 0) + dt);
    // Inclusive time, for the project's own functions only, once per function per sample.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)!.callFrame;
      const grp = groupOf(cf);
      if (!/^(server|shared|client|cli)\//.test(grp)) continue;
      const k = nameOf(cf);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  }
  const rank = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, ms]) => ({ name, ms, pct: ms / busy }));
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)}%`;
  const lines: string[] = [];
  lines.push(`profile ${path.relative(ROOT, file)}: ${(busy / 1000).toFixed(1)} s busy, ${(idle / 1000).toFixed(1)} s idle (${pct(busy / (busy + idle)).trim()} busy)`);
  lines.push('  self time by package / file (share of busy time):');
  for (const r of rank(groups, 14)) lines.push(`    ${pct(r.pct)}  ${r.name}`);
  lines.push(`  top ${top} functions by self time:`);
  for (const r of rank(self, top)) lines.push(`    ${pct(r.pct)}  ${r.name}`);
  lines.push('  TabGrid functions by inclusive time (with what they call):');
  for (const r of rank(inclusive, 20)) lines.push(`    ${pct(r.pct)}  ${r.name}`);
  return {
    file: path.relative(ROOT, file), busyMs: busy, idleMs: idle,
    top: rank(self, top).map((r) => ({ name: r.name, selfPct: Number((r.pct * 100).toFixed(1)) })),
    groups: rank(groups, 14).map((r) => ({ name: r.name, selfPct: Number((r.pct * 100).toFixed(1)) })),
    inclusive: rank(inclusive, 20).map((r) => ({ name: r.name, pct: Number((r.pct * 100).toFixed(1)) })),
    lines,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  if (!file) {
    process.stderr.write('usage: npm run bench:profile -- FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  const topAt = args.indexOf('--top');
  const s = summarizeProfile(path.resolve(file), { top: topAt >= 0 ? Number(args[topAt + 1]) : 25 });
  process.stdout.write(`${s.lines.join('\n')}\n`);
}

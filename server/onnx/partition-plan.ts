/**
 * Where to cut: stage boundaries over the topologically ordered compute nodes, and the tensors that
 * cross each boundary. Pure TypeScript over the graph analysis; nothing here runs the model.
 *
 * Balancing, for `{ stages: S }`:
 * 1. Find the smallest possible "heaviest stage": the least M such that S contiguous stages each hold at
 *    most M bytes of weights (a stage's weights are the union of what its nodes read, so shared weights
 *    count once per stage). Binary search on M with a greedy fill.
 * 2. Among the splits whose every stage stays within M * (1 + WEIGHT_SLACK), pick the one with the most
 *    even weight bytes (least sum of squared deviations from the mean); ties, which are common because
 *    a cut can move freely across nodes without weights (Relu, Add), go to the split that sends the fewest
 *    tensors across the cuts (each crossing is traffic between volunteers on every batch), then to the
 *    most even estimated compute (MACs per output position of Conv/MatMul/Gemm), then node count.
 *    Exact dynamic programming over cut positions; for the evenness term a weight shared by several
 *    nodes counts at its first reader.
 */
import { AppError } from '../../shared/errors.js';
import { type GraphAnalysis, describeNode } from './graph-order.js';

/** How far above the lightest achievable heaviest stage a split may go to buy narrower cuts. */
export const WEIGHT_SLACK = 0.1;

/** `stages`: split into that many balanced stages. `cuts`: tensor (or node) names after which to cut. */
export type PartitionSpec = { stages: number } | { cuts: string[] };

interface Lifetime { name: string; order: number; born: number; lastUse: number }

/**
 * For every non-weight tensor, the node position that writes it (-1 for a graph input) and the last
 * position that needs it (the node count when it is a graph output).
 */
function lifetimes(a: GraphAnalysis): Lifetime[] {
  const n = a.nodes.length;
  const byName = new Map<string, Lifetime>();
  for (const name of a.inputs) byName.set(name, { name, order: byName.size, born: -1, lastUse: -1 });
  a.nodes.forEach((c, i) => {
    for (const w of c.writes) byName.set(w, { name: w, order: byName.size, born: i, lastUse: -1 });
  });
  a.nodes.forEach((c, i) => {
    for (const r of c.reads) {
      const l = byName.get(r);
      if (l) l.lastUse = Math.max(l.lastUse, i);
    }
  });
  for (const o of a.outputs) {
    const l = byName.get(o);
    if (l) l.lastUse = n;
  }
  return [...byName.values()];
}

/** Tensors that cross the boundary before node position `p`: written before it, needed at or after it. */
export function crossingAt(a: GraphAnalysis, p: number): string[] {
  return lifetimes(a).filter((l) => l.born < p && l.lastUse >= p).sort((x, y) => x.order - y.order).map((l) => l.name);
}

/** Stage boundaries: positions 0 = b0 < b1 < ... < bS = node count; stage k holds nodes [b_k, b_k+1). */
export function planBoundaries(a: GraphAnalysis, spec: PartitionSpec): number[] {
  if ('cuts' in spec) return boundariesFromCuts(a, spec.cuts);
  const n = a.nodes.length;
  const s = spec.stages;
  if (!Number.isInteger(s) || s < 1) throw new AppError('INVALID_PAYLOAD', `stages must be a positive integer, got ${s}`);
  if (s > n) throw new AppError('INVALID_PAYLOAD', `cannot split ${n} compute node${n === 1 ? '' : 's'} into ${s} stages: every stage needs at least one node (Constant nodes do not count; they are copied where needed)`);
  if (s === 1) return [0, n];
  const limit = Math.floor(lightestHeaviestStage(a, s) * (1 + WEIGHT_SLACK));
  return bestSplit(a, s, limit);
}

function boundariesFromCuts(a: GraphAnalysis, cuts: string[]): number[] {
  const n = a.nodes.length;
  const nodeByName = new Map<string, number>();
  a.nodes.forEach((c, i) => { if (c.node.name) nodeByName.set(c.node.name, i); });
  const at = new Map<number, string>();
  for (const name of cuts) {
    let pos = a.producer.get(name) ?? nodeByName.get(name);
    if (pos === undefined) {
      if (a.inputs.includes(name)) throw new AppError('INVALID_PAYLOAD', `cannot cut after ${name}: it is a graph input, so the first stage would be empty`);
      if (a.weights.has(name)) throw new AppError('INVALID_PAYLOAD', `cannot cut after ${name}: it is a weight (initializer or Constant), copied into every stage that needs it; name a computed tensor`);
      throw new AppError('INVALID_PAYLOAD', `cannot cut after ${name}: the graph has no tensor or node of that name`);
    }
    pos += 1;
    if (pos >= n) throw new AppError('INVALID_PAYLOAD', `cannot cut after ${name}: it is written by the last node (${describeNode(a.nodes[n - 1])}), so the last stage would be empty`);
    const other = at.get(pos);
    if (other !== undefined) throw new AppError('INVALID_PAYLOAD', `cuts after ${other} and ${name} fall at the same place (after node ${describeNode(a.nodes[pos - 1])}), which would leave an empty stage`);
    at.set(pos, name);
  }
  return [0, ...[...at.keys()].sort((x, y) => x - y), n];
}

/** Bytes of the union of weights that nodes [from, to) read. */
function weightBytesOf(a: GraphAnalysis, from: number, to: number): number {
  const seen = new Set<string>();
  let bytes = 0;
  for (let i = from; i < to; i++) {
    for (const w of a.nodes[i].weightReads) {
      if (!seen.has(w)) { seen.add(w); bytes += a.weights.get(w)!.bytes; }
    }
  }
  return bytes;
}

/** Stages a greedy left-to-right fill needs so that none holds more than `limit` weight bytes. */
function stagesNeeded(a: GraphAnalysis, limit: number): number {
  let stages = 1;
  let seen = new Set<string>();
  let bytes = 0;
  for (const c of a.nodes) {
    const fresh = c.weightReads.filter((w) => !seen.has(w));
    const add = fresh.reduce((s, w) => s + a.weights.get(w)!.bytes, 0);
    if (bytes + add <= limit) {
      for (const w of fresh) seen.add(w);
      bytes += add;
      continue;
    }
    stages++;
    seen = new Set(c.weightReads);
    bytes = c.weightReads.reduce((s, w) => s + a.weights.get(w)!.bytes, 0);
  }
  return stages;
}

function lightestHeaviestStage(a: GraphAnalysis, s: number): number {
  let lo = 0;
  for (let i = 0; i < a.nodes.length; i++) lo = Math.max(lo, weightBytesOf(a, i, i + 1));
  let hi = Math.max(lo, weightBytesOf(a, 0, a.nodes.length));
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (stagesNeeded(a, mid) <= s) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Terms of a split's cost, compared in order: weight imbalance, crossing tensors, compute imbalance,
 * node-count imbalance. Sums of squares are compared with a relative tolerance, so that rounding does
 * not decide between splits that are equally even.
 */
const TERMS = 4;
function less(x: Float64Array, y: Float64Array, at: number): boolean {
  if (y[at] === Infinity) return true;
  for (let t = 0; t < TERMS; t++) {
    const u = x[t], v = y[at + t];
    if (Math.abs(u - v) > 1e-9 * Math.max(Math.abs(u), Math.abs(v))) return u < v;
  }
  return false;
}

function bestSplit(a: GraphAnalysis, s: number, limit: number): number[] {
  const n = a.nodes.length;
  // first[j]: the earliest start i such that nodes [i, j) hold at most `limit` weight bytes.
  const first = new Int32Array(n + 1);
  const held = new Map<string, number>();
  let bytes = 0;
  let i = 0;
  for (let j = 1; j <= n; j++) {
    for (const w of a.nodes[j - 1].weightReads) {
      const k = held.get(w) ?? 0;
      if (k === 0) bytes += a.weights.get(w)!.bytes;
      held.set(w, k + 1);
    }
    while (bytes > limit && i < j - 1) {
      for (const w of a.nodes[i].weightReads) {
        const k = held.get(w)! - 1;
        held.set(w, k);
        if (k === 0) bytes -= a.weights.get(w)!.bytes;
      }
      i++;
    }
    first[j] = i;
  }

  const width = new Float64Array(n + 1);
  const diff = new Float64Array(n + 2);
  for (const l of lifetimes(a)) {
    const from = l.born + 1;
    const to = Math.min(l.lastUse, n - 1);
    if (from <= to) { diff[from]++; diff[to + 1]--; }
  }
  for (let p = 1, run = diff[0]; p <= n; p++) { run += diff[p]; width[p] = run; }
  const macs = new Float64Array(n + 1);
  const owned = new Float64Array(n + 1);
  const counted = new Set<string>();
  a.nodes.forEach((c, k) => {
    macs[k + 1] = macs[k] + c.macs;
    owned[k + 1] = owned[k];
    for (const w of c.weightReads) {
      if (!counted.has(w)) { counted.add(w); owned[k + 1] += a.weights.get(w)!.bytes; }
    }
  });
  const sq = (total: Float64Array, p: number, q: number) => (s * (total[q] - total[p]) - total[n]) ** 2;

  // cost[k][j * TERMS + t]: term t of the cheapest way to put nodes [0, j) into k + 1 stages (Infinity
  // when there is none); from[k][j]: where its last stage starts.
  const cost = Array.from({ length: s }, () => new Float64Array((n + 1) * TERMS).fill(Infinity));
  const from = Array.from({ length: s }, () => new Int32Array(n + 1));
  const term = new Float64Array(TERMS);
  for (let j = 1; j <= n; j++) {
    if (first[j] === 0) cost[0].set([sq(owned, 0, j), 0, sq(macs, 0, j), (s * j - n) ** 2], j * TERMS);
  }
  for (let k = 1; k < s; k++) {
    const prev = cost[k - 1];
    const cur = cost[k];
    for (let j = k + 1; j <= n; j++) {
      for (let p = Math.max(first[j], k); p < j; p++) {
        const at = p * TERMS;
        if (prev[at] === Infinity) continue;
        term[0] = prev[at] + sq(owned, p, j);
        term[1] = prev[at + 1] + width[p];
        term[2] = prev[at + 2] + sq(macs, p, j);
        term[3] = prev[at + 3] + (s * (j - p) - n) ** 2;
        if (less(term, cur, j * TERMS)) { cur.set(term, j * TERMS); from[k][j] = p; }
      }
    }
  }
  if (cost[s - 1][n * TERMS] === Infinity) throw new AppError('INTERNAL', `no split into ${s} stages within ${limit} weight bytes per stage`);
  const bounds = [n];
  for (let k = s - 1, j = n; k > 0; k--) { j = from[k][j]; bounds.unshift(j); }
  return [0, ...bounds];
}

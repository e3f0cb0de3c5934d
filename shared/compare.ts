/**
 * Numeric comparison of replica outputs. Floats from different backends and GPUs differ slightly,
 * so agreement is |a - b| <= atol + rtol * |b| elementwise (numpy.allclose), never bit equality.
 */
import { type Tensor, toNumbers } from './tensor.js';

export interface Tolerance { rtol: number; atol: number }

export type CompareResult =
  | { verdict: 'agree' }
  | { verdict: 'disagree'; detail: string };

/** Compares two sets of named output tensors; both must hold the same names, dtypes and dims. */
export function compareOutputs(a: readonly Tensor[], b: readonly Tensor[], tol: Tolerance): CompareResult {
  if (a.length !== b.length) return { verdict: 'disagree', detail: `output count ${a.length} vs ${b.length}` };
  const byName = new Map(b.map((t) => [t.name, t]));
  for (const ta of a) {
    const tb = byName.get(ta.name);
    if (!tb) return { verdict: 'disagree', detail: `output ${ta.name} missing` };
    if (ta.dtype !== tb.dtype) return { verdict: 'disagree', detail: `${ta.name}: dtype ${ta.dtype} vs ${tb.dtype}` };
    if (ta.dims.join() !== tb.dims.join()) return { verdict: 'disagree', detail: `${ta.name}: dims [${ta.dims}] vs [${tb.dims}]` };
    const r = compareValues(toNumbers(ta), toNumbers(tb), tol);
    if (r) return { verdict: 'disagree', detail: `${ta.name}: ${r}` };
  }
  return { verdict: 'agree' };
}

/** Returns null when all values are close, else a description of the worst element. */
export function compareValues(x: ArrayLike<number>, y: ArrayLike<number>, tol: Tolerance): string | null {
  let bad = 0;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < x.length; i++) {
    const a = x[i], b = y[i];
    if (Number.isNaN(a) || Number.isNaN(b)) {
      if (Number.isNaN(a) && Number.isNaN(b)) continue;
      bad++; if (worst < 0) { worst = i; worstExcess = Infinity; }
      continue;
    }
    if (a === b) continue; // covers equal infinities
    const diff = Math.abs(a - b);
    const allowed = tol.atol + tol.rtol * Math.abs(b);
    if (!(diff <= allowed)) {
      bad++;
      const excess = diff - allowed;
      if (excess > worstExcess || worst < 0) { worst = i; worstExcess = excess; }
    }
  }
  if (bad === 0) return null;
  return `${bad} of ${x.length} values differ beyond rtol ${tol.rtol}, atol ${tol.atol}; worst at ${worst}: ${x[worst]} vs ${y[worst]}`;
}

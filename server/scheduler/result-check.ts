/**
 * Checks a returned output set against what the model declares before any comparison: the same names,
 * dtypes, ranks and fixed dims, and a first axis equal to the task's item count (so batches concatenate).
 */
import type { TensorSpec } from '../../shared/protocol.js';
import { type Tensor, tensorProblem } from '../../shared/tensor.js';

/** Returns the first problem found, or null when the outputs fit the model and the batch. */
export function outputProblem(outputs: readonly Tensor[], specs: readonly TensorSpec[], items: number): string | null {
  if (outputs.length !== specs.length) return `expected ${specs.length} outputs (${specs.map((s) => s.name).join(', ')}), got ${outputs.length}`;
  const seen = new Set<string>();
  for (const t of outputs) {
    const spec = specs.find((s) => s.name === t.name);
    if (!spec) return `unexpected output ${t.name}`;
    if (seen.has(t.name)) return `output ${t.name} sent twice`;
    seen.add(t.name);
    if (t.dtype !== spec.dtype) return `output ${t.name}: dtype ${t.dtype}, the model declares ${spec.dtype}`;
    const bytes = tensorProblem(t);
    if (bytes) return bytes;
    if (spec.shape.length > 0 && t.dims.length !== spec.shape.length) {
      return `output ${t.name}: rank ${t.dims.length}, the model declares [${spec.shape.join(', ')}]`;
    }
    for (let i = 1; i < spec.shape.length; i++) {
      const want = spec.shape[i];
      if (typeof want === 'number' && t.dims[i] !== want) return `output ${t.name}: dims [${t.dims}], the model declares [${spec.shape.join(', ')}]`;
    }
    if (t.dims[0] !== items) return `output ${t.name}: first axis ${t.dims[0]}, expected ${items} (one row per item of the batch)`;
  }
  return null;
}

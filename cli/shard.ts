/**
 * `tabgrid shard`: splits a model into pipeline stages, checks that the stages run in sequence give the
 * whole model's outputs on a dummy input, then writes DIR/stage-1.onnx ... DIR/stage-S.onnx and prints
 * what each stage holds and passes on.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../shared/errors.js';
import type { TensorSpec } from '../shared/protocol.js';
import { type PartitionResult, checkPartition, partitionModel } from '../server/onnx/partition.js';
import { ApiError } from './api-client.js';

export interface ShardOptions {
  stages?: number;
  /** Comma-separated tensor (or node) names to cut after. */
  cuts?: string;
  out: string;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(2)} MiB`;
}

const spec = (t: TensorSpec) => `${t.name} ${t.dtype}[${t.shape.join(',')}]`;

/** The stage table: one row per stage, then the tensors it receives and hands on. */
export function describeStages(result: PartitionResult, files: string[]): string {
  const rows = [['stage', 'nodes', 'weights', 'file']];
  for (const s of result.stages) rows.push([String(s.index), String(s.nodes), `${size(s.weightBytes)} (${s.weightBytes} B)`, `${files[s.index - 1]} sha256 ${s.hash.slice(0, 12)}`]);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd();
  const out = [line(rows[0])];
  result.stages.forEach((s, k) => {
    out.push(line(rows[k + 1]));
    for (const t of s.inputs) out.push(`    in   ${spec(t)}`);
    for (const t of s.outputs) out.push(`    out  ${spec(t)}`);
  });
  return out.join('\n');
}

/**
 * Splits `modelPath` by `--stages S` or `--cuts a,b,...` and writes the stages under `opts.out`.
 * Refusals (a bad split, a model that cannot be split, stages that do not reproduce the model) are
 * ApiErrors with status 0, as for other local mistakes, so the command prints the reason.
 */
export async function shardCommand(modelPath: string, opts: ShardOptions, say: (s: string) => void): Promise<PartitionResult> {
  if ((opts.stages === undefined) === (opts.cuts === undefined)) {
    throw new ApiError(0, 'INVALID_PAYLOAD', 'give either --stages S or --cuts NAME,NAME,... (tensors to cut after)');
  }
  if (!fs.existsSync(modelPath)) throw new ApiError(0, 'NOT_FOUND', `model not found: ${modelPath}`);
  const bytes = new Uint8Array(fs.readFileSync(modelPath));
  let result: PartitionResult;
  try {
    result = await partitionModel(bytes, opts.cuts !== undefined
      ? { cuts: opts.cuts.split(',').map((c) => c.trim()).filter((c) => c) }
      : { stages: opts.stages! });
    const check = await checkPartition(bytes, result);
    if (check.verdict === 'disagree') throw new AppError('INTERNAL', `the stages do not reproduce the model on a dummy input: ${check.detail}`);
  } catch (err) {
    if (err instanceof AppError) throw new ApiError(0, err.code, err.message);
    throw err;
  }
  fs.mkdirSync(opts.out, { recursive: true });
  const files = result.stages.map((s) => path.join(opts.out, `stage-${s.index}.onnx`));
  result.stages.forEach((s, k) => fs.writeFileSync(files[k], s.bytes));
  say(describeStages(result, files));
  say(`${result.stages.length} stages checked against the whole model on a dummy input: outputs agree`);
  return result;
}

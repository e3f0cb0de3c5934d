import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../shared/tensor.js';
import { shardCommand } from '../../cli/shard.js';
import {
  chainModel, cycleModel, declaredChainModel, diamondModel, ifModel, ir10Model, ir10Reference, lateInputModel, sharedModel, skipModel,
} from '../../test/helpers/graph-models.js';
import { T } from '../../test/helpers/onnx-build.js';
import { OCR_DET_MODEL, floatData } from '../../test/helpers/models.js';
import { readModelInfo } from './model-info.js';
import { decodeModel, encodeModel } from './onnx-codec.js';
import { type PartitionOptions, type PartitionResult, checkPartition, partitionModel } from './partition.js';
import { SESSION_OPTIONS } from './tensor-probe.js';

const names = (specs: { name: string }[]) => specs.map((s) => s.name);

function floats(name: string, dims: number[], seed: number, scale = 1): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const f = new Float32Array(floatData(seed, n).buffer).map((v) => v * scale);
  return { name, dtype: 'float32', dims, data: new Uint8Array(f.buffer) };
}

/** Every stage's inputs are among the previous stage's outputs; the ends are the model's own. */
function expectChained(model: Uint8Array, result: PartitionResult): void {
  const whole = readModelInfo(model);
  const { stages } = result;
  expect(stages[0].inputs).toEqual(whole.inputs);
  expect(stages.at(-1)!.outputs).toEqual(whole.outputs);
  for (let k = 1; k < stages.length; k++) {
    expect(names(stages[k - 1].outputs)).toEqual(expect.arrayContaining(names(stages[k].inputs)));
  }
  stages.forEach((s, k) => expect(s.index).toBe(k + 1));
}

async function splitAndCheck(model: Uint8Array, opts: PartitionOptions, samples?: Tensor[]): Promise<PartitionResult> {
  const result = await partitionModel(model, opts);
  expectChained(model, result);
  expect(await checkPartition(model, result, samples)).toEqual({ verdict: 'agree' });
  return result;
}

const graphOf = (bytes: Uint8Array) => decodeModel(bytes).graph!;

describe('partitionModel on small graphs', () => {
  it('splits a chain evenly by weight, into as many stages as it has compute nodes', async () => {
    const model = chainModel(4);
    const four = await splitAndCheck(model, { stages: 4 });
    expect(four.stages.map((s) => s.weightBytes)).toEqual([64, 64, 64, 64]);
    expect(four.stages.map((s) => s.nodes)).toEqual([2, 2, 2, 2]);
    expect(four.stages.map((s) => s.hash)).toEqual(four.stages.map(() => expect.stringMatching(/^[0-9a-f]{64}$/)));
    expect(new Set(four.stages.map((s) => s.hash)).size).toBe(4);
    const whole = await splitAndCheck(model, { stages: 1 });
    expect(whole.stages[0].nodes).toBe(8);
    await splitAndCheck(model, { stages: 8 });
  });

  it('carries both branches of a diamond across a cut inside it', async () => {
    const model = diamondModel();
    for (const stages of [2, 3, 4]) await splitAndCheck(model, { stages });
    const cut = await splitAndCheck(model, { cuts: ['b'] });
    expect(names(cut.stages[0].outputs)).toEqual(['a', 'b']);
    expect(names(cut.stages[1].inputs)).toEqual(['a', 'b']);
  });

  it('orders a file listed out of order, and passes a graph input needed at the end through every stage', async () => {
    const model = skipModel();
    for (const stages of [2, 3, 5, 7]) {
      const result = await splitAndCheck(model, { stages });
      for (const s of result.stages.slice(1)) expect(names(s.inputs)).toContain('x');
    }
    const cut = await partitionModel(model, { cuts: ['r1'] });
    expect(names(cut.stages[0].outputs)).toEqual(['x', 'r1']);
    expect(graphOf(cut.stages[1].bytes).node.map((n) => n.name)).toEqual(['f2', 'f2_act', 'res2', 'final']);
  });

  it('carries an output produced early to the end, and copies shared weights and Constants to both sides', async () => {
    const model = sharedModel();
    const result = await splitAndCheck(model, { cuts: ['a'] });
    const [first, second] = result.stages;
    expect(first.outputs).toEqual([
      { name: 'early', dtype: 'float32', shape: ['n', 4] },
      { name: 's', dtype: 'int64', shape: [2] },
      { name: 'a', dtype: 'float32', shape: ['n', 4] },
    ]);
    expect(names(second.outputs)).toEqual(['y', 'early']);
    const g1 = graphOf(first.bytes);
    const g2 = graphOf(second.bytes);
    expect(g1.initializer.map((t) => t.name)).toEqual(['W']);
    expect(g2.initializer.map((t) => t.name).sort()).toEqual(['V', 'W']);
    for (const g of [g1, g2]) expect(g.node.filter((n) => n.opType === 'Constant').map((n) => n.output[0])).toEqual(['k']);
    expect(first.weightBytes).toBe(64 + 16);
    expect(second.weightBytes).toBe(64 + 64 + 16);
    for (const stages of [2, 3, 4, 8]) await splitAndCheck(model, { stages });
  });

  it('passes along an input that joins only at the last node', async () => {
    const model = lateInputModel();
    const result = await splitAndCheck(model, { stages: 4 });
    expect(names(result.stages[0].inputs)).toEqual(['a', 'b', 'bias']);
    for (const s of result.stages.slice(1)) expect(names(s.inputs)).toContain('bias');
  });

  it('carries the outer-scope tensors an If branch reads, and copies the weights it reads', async () => {
    const model = ifModel();
    const plus = [floats('x', [2, 4], 3)];
    const minus = [floats('x', [2, 4], 3, -1)];
    const result = await splitAndCheck(model, { cuts: ['cond'] }, plus);
    expect(await checkPartition(model, result, minus)).toEqual({ verdict: 'agree' });
    expect(names(result.stages[1].inputs)).toEqual(['h', 'cond']);
    expect(graphOf(result.stages[1].bytes).initializer.map((t) => t.name)).toEqual(['V', 'b']);
    for (const stages of [2, 3, 5]) await splitAndCheck(model, { stages }, minus);
  });

  it('uses declared value_info for the tensors between stages', async () => {
    const result = await splitAndCheck(declaredChainModel(), { stages: 3 });
    expect(result.stages[0].outputs).toEqual([{ name: 't0', dtype: 'float32', shape: ['batch', 4] }]);
  });

  it('refuses a split it cannot make, saying why', async () => {
    const chain = chainModel(4);
    const refused = (opts: PartitionOptions, code: string, message: RegExp) =>
      expect(partitionModel(chain, opts)).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
    await refused({ stages: 9 }, 'INVALID_PAYLOAD', /cannot split 8 compute nodes into 9 stages/);
    await refused({ stages: 0 }, 'INVALID_PAYLOAD', /positive integer/);
    await refused({ cuts: ['nope'] }, 'INVALID_PAYLOAD', /cannot cut after nope: the graph has no tensor or node of that name/);
    await refused({ cuts: ['x'] }, 'INVALID_PAYLOAD', /x: it is a graph input/);
    await refused({ cuts: ['W1'] }, 'INVALID_PAYLOAD', /W1: it is a weight/);
    await refused({ cuts: ['y'] }, 'INVALID_PAYLOAD', /the last stage would be empty/);
    await refused({ cuts: ['m0', 'mm0'] }, 'INVALID_PAYLOAD', /cuts after m0 and mm0 fall at the same place/);
    await expect(partitionModel(cycleModel(), { stages: 2 })).rejects.toMatchObject({ code: 'INVALID_MODEL', message: expect.stringMatching(/cycle/) });
    await expect(partitionModel(new TextEncoder().encode('not a model'), { stages: 2 })).rejects.toMatchObject({ code: 'INVALID_MODEL' });
  });

  it('checkPartition notices stages that do not reproduce the model', async () => {
    const model = chainModel(4);
    const result = await partitionModel(model, { stages: 2 });
    const last = decodeModel(result.stages[1].bytes);
    last.graph!.initializer[0].floatData = last.graph!.initializer[0].floatData.map((v) => v + 0.5);
    const tampered = { stages: [result.stages[0], { ...result.stages[1], bytes: encodeModel(last) }] };
    expect(await checkPartition(model, tampered)).toMatchObject({ verdict: 'disagree', detail: expect.stringMatching(/^y: \d+ of \d+ values differ/) });
    expect(await checkPartition(model, { stages: [result.stages[1]] })).toMatchObject({ verdict: 'disagree', detail: expect.stringMatching(/stage 2 needs t1/) });
  });
});

describe('partitionModel keeps what ONNX added after 1.10', () => {
  const model = ir10Model();
  const x = floats('x', [3, 4], 5, 2);
  const meta = (key: string, value: string) => [expect.objectContaining({ key, value })];
  const unknown = (m: { $unknown?: { no: number }[] }) => (m.$unknown ?? []).map((f) => f.no);

  it('keeps 4- and 8-bit weights, metadata, device configurations, function overloads and later fields in the stages', async () => {
    const result = await splitAndCheck(model, { cuts: ['h'] }, [x]);
    const [first, second] = result.stages.map((s) => decodeModel(s.bytes));
    for (const m of [first, second]) {
      expect(m.irVersion).toBe(10n);
      expect(m.metadataProps).toEqual(meta('license', 'MIT'));
      expect(m.configuration).toEqual([expect.objectContaining({ name: 'pair', numDevices: 2, device: ['gpu0', 'gpu1'] })]);
      expect(m.functions).toEqual([expect.objectContaining({ name: 'ScaleShift', overload: 'v2', metadataProps: meta('computes', '(a + b) * a') })]);
      expect(m.functions[0].valueInfo.map((v) => v.name)).toEqual(['t']);
      expect(m.graph!.metadataProps).toEqual(meta('graph', 'ir10'));
      expect(unknown(m)).toEqual([98]);
    }
    const g1 = first.graph!;
    const g2 = second.graph!;
    expect(g1.node.map((n) => n.name)).toEqual(['dq', 'mul', 'act']);
    expect(g1.node[0]).toMatchObject({ metadataProps: meta('weight', 'int4'), deviceConfigurations: [expect.objectContaining({ configurationId: 'pair' })] });
    expect(g1.initializer.map((t) => [t.name, t.dataType, Array.from(t.rawData)])).toEqual([['Wq', T.INT4, [0xb3, 0x87]], ['s', T.FLOAT, []]]);
    expect(g1.initializer[0].metadataProps).toEqual(meta('bits', '4'));
    expect(g1.quantizationAnnotation.map((q) => q.tensorName)).toEqual(['Wq']);
    expect(g1.input[0].metadataProps).toEqual(meta('unit', 'volt'));
    expect(g1.output.map((v) => [v.name, v.metadataProps])).toEqual([['h', meta('crosses', 'the cut')]]);

    expect(g2.node.map((n) => n.name)).toEqual(['f8', 'shift']);
    expect(g2.node[1]).toMatchObject({ overload: 'v2', metadataProps: meta('stage', 'second') });
    expect(unknown(g2.node[1])).toEqual([99]);
    expect(g2.initializer.map((t) => [t.name, t.dataType, Array.from(t.rawData)])).toEqual([['F8', T.FLOAT8E4M3FN, [0x38, 0x30, 0x40, 0xb8]]]);
    expect(g2.initializer[0].metadataProps).toEqual(meta('bits', '8'));
    expect(g2.quantizationAnnotation).toEqual([]);
    expect(g2.input.map((v) => [v.name, v.metadataProps])).toEqual([['h', meta('crosses', 'the cut')]]);
    expect(g2.output[0].metadataProps).toEqual(meta('unit', 'watt'));
  });

  it('gives stages that run in onnxruntime one after the other and compute what the model says', async () => {
    const result = await partitionModel(model, { stages: 2 });
    const xs = new Float32Array(x.data.slice().buffer);
    let feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', xs, x.dims) };
    for (const stage of result.stages) {
      const session = await ort.InferenceSession.create(stage.bytes, SESSION_OPTIONS);
      feeds = await session.run(feeds);
      await session.release();
    }
    const want = ir10Reference(xs);
    Array.from(feeds.y.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
  });
});

describe('partitionModel on PP-OCRv4 detection', () => {
  const model = new Uint8Array(fs.readFileSync(OCR_DET_MODEL));
  const sample = [floats('x', [1, 3, 64, 64], 7)];
  // All of this model's weights are Constant nodes, each read by one node.
  const totalWeights = 4_687_364;

  it.each([2, 3, 4])('splits into %i stages whose outputs match the whole model, balanced by weight', async (stages) => {
    const result = await splitAndCheck(model, { stages }, sample);
    const weights = result.stages.map((s) => s.weightBytes);
    expect(weights.reduce((a, b) => a + b, 0)).toBe(totalWeights);
    expect(Math.max(...weights)).toBeLessThan(1.3 * (totalWeights / stages));
    expect(result.stages.every((s) => s.nodes > 0 && s.outputs.length > 0)).toBe(true);
  });

  it('keeps symbolic dims symbolic: stages run at a size other than the one probed', async () => {
    const result = await partitionModel(model, { stages: 3 });
    expect(result.stages[1].inputs[0].shape).toEqual(['p2o.DynamicDimension.0', 48, expect.any(String), expect.any(String)]);
    expect(await checkPartition(model, result, [floats('x', [2, 3, 32, 96], 8)])).toEqual({ verdict: 'agree' });
  });

  it('says why when the model does not run on the dummy input that reveals the types between stages', async () => {
    await expect(partitionModel(model, { stages: 2, probeDims: { 'p2o.DynamicDimension.1': 40 } })).rejects.toMatchObject({
      code: 'INVALID_MODEL',
      message: expect.stringMatching(/does not run on a dummy input with symbolic dims .*"p2o.DynamicDimension.1":40.*Add/),
    });
  });

  it('cuts after a named tensor', async () => {
    const result = await partitionModel(model, { cuts: ['p2o.Add.43'] });
    expect(names(result.stages[0].outputs)).toEqual(['p2o.Add.43']);
    expect(await checkPartition(model, result, sample)).toEqual({ verdict: 'agree' });
  });
});

describe('tabgrid shard', () => {
  it('writes DIR/stage-k.onnx and prints each stage with its inputs and outputs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-shard-'));
    const modelPath = path.join(dir, 'diamond.onnx');
    fs.writeFileSync(modelPath, diamondModel());
    const said: string[] = [];
    try {
      const result = await shardCommand(modelPath, { stages: 3, out: path.join(dir, 'out') }, (s) => said.push(s));
      for (const s of result.stages) {
        const file = fs.readFileSync(path.join(dir, 'out', `stage-${s.index}.onnx`));
        expect(createHash('sha256').update(file).digest('hex')).toBe(s.hash);
      }
      const text = said.join('\n');
      expect(text).toMatch(/^stage\s+nodes\s+weights\s+file/);
      expect(text).toContain('in   x float32[n,4]');
      expect(text).toContain('out  y float32[n,4]');
      expect(text).toMatch(/3 stages checked .* agree/);
      await expect(shardCommand(modelPath, { out: dir }, () => {})).rejects.toThrow(/either --stages S or --cuts/);
      await expect(shardCommand(modelPath, { cuts: 'a,zz', out: dir }, () => {})).rejects.toMatchObject({ code: 'INVALID_PAYLOAD', message: expect.stringMatching(/zz/) });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

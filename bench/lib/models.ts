/**
 * Models and data for the benchmarks, built in code (no download): an Identity model,
 * whose right answer a fake worker returns at no cost, and a chain of dense layers whose run time is
 * set by its width and depth, for figures that need a model of known cost.
 */
import { npyHeader, writeNpy } from '../../shared/npy.js';
import { type GraphInit, type NodeInit, T, type TensorInit, encodeGraph, tensorInfo } from '../../test/helpers/onnx-build.js';

function valueInfo(name: string, dims: (number | string)[]) {
  return tensorInfo(name, T.FLOAT, dims);
}

function encode(graph: GraphInit): Uint8Array {
  return encodeGraph(graph, { irVersion: 7, opset: 13, producerName: 'tabgrid-bench' });
}

/** y = x, float32 [n, width]: the answer is the input, so a fake worker's result is right at no cost. */
export function identityModel(width: number): Uint8Array {
  return encode({
    name: 'identity',
    node: [{ opType: 'Identity', input: ['x'], output: ['y'] }],
    input: [valueInfo('x', ['n', width])],
    output: [valueInfo('y', ['n', width])],
  });
}

/** Deterministic values in [-a, a), so runs repeat. */
function seeded(seed: number, n: number, a: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 31 - 1) * a;
  }
  return out;
}

/**
 * x -> (MatMul W_i, Tanh) x `layers` -> y, float32 [n, width]: 2 * n * width^2 * layers flops per run,
 * weights scaled so the activations stay in range.
 */
export function denseChainModel(width: number, layers: number): Uint8Array {
  const node: NodeInit[] = [];
  const initializer: TensorInit[] = [];
  let prev = 'x';
  for (let i = 0; i < layers; i++) {
    const out = i === layers - 1 ? 'y' : `h${i}`;
    node.push({ opType: 'MatMul', input: [prev, `W${i}`], output: [`m${i}`] });
    node.push({ opType: 'Tanh', input: [`m${i}`], output: [out] });
    const w = seeded(100 + i, width * width, 1 / Math.sqrt(width));
    initializer.push({ name: `W${i}`, dims: [BigInt(width), BigInt(width)], dataType: T.FLOAT, rawData: new Uint8Array(w.buffer) });
    prev = out;
  }
  return encode({ name: 'dense', node, initializer, input: [valueInfo('x', ['n', width])], output: [valueInfo('y', ['n', width])] });
}

/** A float32 .npy of shape [items, width], values in [-1, 1). */
export function floatNpy(items: number, width: number, seed = 7): Uint8Array {
  const data = seeded(seed, items * width, 1);
  return writeNpy('float32', [items, width], new Uint8Array(data.buffer));
}

/** The same, built in chunks: the header and then `chunks` pieces, for data sets too big to build twice. */
export function* floatNpyChunks(items: number, width: number, itemsPerChunk = 65_536): Generator<Uint8Array> {
  yield npyHeader('float32', [items, width]);
  for (let at = 0, seed = 1; at < items; at += itemsPerChunk, seed++) {
    const n = Math.min(itemsPerChunk, items - at);
    yield new Uint8Array(seeded(seed, n * width, 1).buffer);
  }
}

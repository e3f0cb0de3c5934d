/**
 * Small ONNX graphs with awkward topology, built in code for the partitioner's tests: chains, diamonds,
 * skip connections, outputs produced early, weights shared across the graph, Constant nodes, an If
 * whose branches read outer-scope tensors, graphs that must be refused, and an IR 10 model that uses what
 * ONNX added since 1.10. Inputs are float32 [N, 4]
 * unless said otherwise, with no value_info for intermediate tensors (as exporters usually write them).
 */
import { create } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { AttributeProto_AttributeType as AttrType, ModelProtoSchema, NodeProtoSchema, ValueInfoProtoSchema } from 'onnx-buf';
import { decodeModel, encodeModel } from '../../server/onnx/onnx-codec.js';
import { type GraphInit as Graph, type NodeInit as Node, T, type TensorInit, type ValueInfoInit, encodeGraph, floatTensor, tensorInfo } from './onnx-build.js';
import { seeded } from './models.js';

const W = 4;

function info(name: string, dims: (number | string)[] = ['n', W], elemType: number = T.FLOAT, metadata: Record<string, string> = {}): ValueInfoInit {
  return tensorInfo(name, elemType, dims, metadata);
}

function matrix(name: string, seed: number, rows = W, cols = W): TensorInit {
  return floatTensor(name, [rows, cols], seeded(seed, rows * cols));
}

function encode(graph: Graph, opset = 13): Uint8Array {
  return encodeGraph(graph, { irVersion: 8, opset, producerName: 'tabgrid-tests' });
}

/** x -> (MatMul Wi, Tanh) x `layers` -> y; each layer's weight is its own initializer. */
export function chainModel(layers = 4): Uint8Array {
  const node: Node[] = [];
  let prev = 'x';
  for (let i = 0; i < layers; i++) {
    const out = i === layers - 1 ? 'y' : `t${i}`;
    node.push({ name: `mm${i}`, opType: 'MatMul', input: [prev, `W${i}`], output: [`m${i}`] });
    node.push({ name: `act${i}`, opType: 'Tanh', input: [`m${i}`], output: [out] });
    prev = out;
  }
  return encode({
    name: 'chain', node, input: [info('x')], output: [info('y')],
    initializer: Array.from({ length: layers }, (_, i) => matrix(`W${i}`, 10 + i)),
  });
}

/** x -> a; b = Relu(a), c = Sigmoid(a); d = b + c -> y: two branches that meet again. */
export function diamondModel(): Uint8Array {
  return encode({
    name: 'diamond',
    node: [
      { name: 'in', opType: 'MatMul', input: ['x', 'W0'], output: ['a'] },
      { name: 'left', opType: 'MatMul', input: ['a', 'W1'], output: ['b0'] },
      { name: 'left_act', opType: 'Relu', input: ['b0'], output: ['b'] },
      { name: 'right', opType: 'MatMul', input: ['a', 'W2'], output: ['c0'] },
      { name: 'right_act', opType: 'Sigmoid', input: ['c0'], output: ['c'] },
      { name: 'join', opType: 'Add', input: ['b', 'c'], output: ['d'] },
      { name: 'out', opType: 'MatMul', input: ['d', 'W3'], output: ['y'] },
    ],
    initializer: [matrix('W0', 1), matrix('W1', 2), matrix('W2', 3), matrix('W3', 4)],
    input: [info('x')], output: [info('y')],
  });
}

/**
 * Residual blocks: h = x + f(x) twice, and the graph input x is added again at the very end, so a cut
 * anywhere must pass x along. Listed out of topological order in the file on purpose.
 */
export function skipModel(): Uint8Array {
  const node: Node[] = [
    { name: 'final', opType: 'Add', input: ['r2', 'x'], output: ['y'] },
    { name: 'f1', opType: 'MatMul', input: ['x', 'W1'], output: ['f1'] },
    { name: 'f1_act', opType: 'Tanh', input: ['f1'], output: ['g1'] },
    { name: 'res1', opType: 'Add', input: ['g1', 'x'], output: ['r1'] },
    { name: 'f2', opType: 'MatMul', input: ['r1', 'W2'], output: ['f2'] },
    { name: 'f2_act', opType: 'Tanh', input: ['f2'], output: ['g2'] },
    { name: 'res2', opType: 'Add', input: ['g2', 'r1'], output: ['r2'] },
  ];
  return encode({
    name: 'skip', node, initializer: [matrix('W1', 5), matrix('W2', 6)], input: [info('x')], output: [info('y')],
  });
}

/**
 * Two outputs, one of them (`early`) written by the first node; the weight W is read by the first and
 * the last MatMul; the Constant `k` is read at both ends; a Shape/Reshape pair sends an int64 tensor
 * across the middle.
 */
export function sharedModel(): Uint8Array {
  return encode({
    name: 'shared',
    node: [
      { name: 'k', opType: 'Constant', output: ['k'], attribute: [{ name: 'value', type: AttrType.TENSOR, t: floatTensor('', [W], [0.5, -1, 2, 0.25]) }] },
      { name: 'first', opType: 'MatMul', input: ['x', 'W'], output: ['early'] },
      { name: 'shape', opType: 'Shape', input: ['early'], output: ['s'] },
      { name: 'scale', opType: 'Mul', input: ['early', 'k'], output: ['a'] },
      { name: 'mid', opType: 'MatMul', input: ['a', 'V'], output: ['b'] },
      { name: 'act', opType: 'Tanh', input: ['b'], output: ['c'] },
      { name: 'flat', opType: 'Reshape', input: ['c', 's'], output: ['d'] },
      { name: 'last', opType: 'MatMul', input: ['d', 'W'], output: ['e'] },
      { name: 'shift', opType: 'Add', input: ['e', 'k'], output: ['y'] },
    ],
    initializer: [matrix('W', 7), matrix('V', 8)],
    input: [info('x')],
    output: [info('y'), info('early')],
  });
}

/** sum = a + b, then a second input `bias` joins only at the last node. */
export function lateInputModel(): Uint8Array {
  return encode({
    name: 'late',
    node: [
      { name: 'sum', opType: 'Add', input: ['a', 'b'], output: ['s'] },
      { name: 'act', opType: 'Relu', input: ['s'], output: ['r'] },
      { name: 'mm', opType: 'MatMul', input: ['r', 'W'], output: ['m'] },
      { name: 'bias', opType: 'Add', input: ['m', 'bias'], output: ['y'] },
    ],
    initializer: [matrix('W', 9)],
    input: [info('a'), info('b'), info('bias', [W])],
    output: [info('y')],
  });
}

/**
 * h = Tanh(x W); an If on sum(h) > 0 whose branches read h and a weight (V, then b) from the outer
 * scope and write z; y = z * 2. A cut between h and the If must carry h, though no node lists it as an input.
 */
export function ifModel(): Uint8Array {
  const branch = (name: string, op: string, weight: string): Graph => ({
    name, node: [{ opType: op, input: ['h', weight], output: [`${name}_out`] }], output: [info(`${name}_out`)],
  });
  return encode({
    name: 'if',
    node: [
      { name: 'mm', opType: 'MatMul', input: ['x', 'W'], output: ['m'] },
      { name: 'act', opType: 'Tanh', input: ['m'], output: ['h'] },
      { name: 'sum', opType: 'ReduceSum', input: ['h'], output: ['s'], attribute: [{ name: 'keepdims', type: AttrType.INT, i: 0n }] },
      { name: 'zero', opType: 'Constant', output: ['zero'], attribute: [{ name: 'value', type: AttrType.TENSOR, t: floatTensor('', [], [0]) }] },
      { name: 'gt', opType: 'Greater', input: ['s', 'zero'], output: ['cond'] },
      {
        name: 'branch', opType: 'If', input: ['cond'], output: ['z'], attribute: [
          { name: 'then_branch', type: AttrType.GRAPH, g: branch('then', 'MatMul', 'V') },
          { name: 'else_branch', type: AttrType.GRAPH, g: branch('else', 'Add', 'b') },
        ],
      },
      { name: 'two', opType: 'Constant', output: ['two'], attribute: [{ name: 'value', type: AttrType.TENSOR, t: floatTensor('', [], [2]) }] },
      { name: 'out', opType: 'Mul', input: ['z', 'two'], output: ['y'] },
    ],
    initializer: [matrix('W', 11), matrix('V', 12), floatTensor('b', [W], seeded(13, W))],
    input: [info('x')], output: [info('y')],
  });
}

/** a = Relu(b), b = Relu(a): a cycle, which no order can run. */
export function cycleModel(): Uint8Array {
  return encode({
    name: 'cycle',
    node: [
      { name: 'one', opType: 'Add', input: ['x', 'b'], output: ['a'] },
      { name: 'two', opType: 'Relu', input: ['a'], output: ['b'] },
    ],
    input: [info('x')], output: [info('b')],
  });
}

/** The chain model with value_info declared for every intermediate tensor, batch axis named `batch`. */
export function declaredChainModel(): Uint8Array {
  const m = decodeModel(chainModel(3));
  m.graph!.valueInfo = ['m0', 't0', 'm1', 't1', 'm2'].map((n) => create(ValueInfoProtoSchema, info(n, ['batch', W])));
  return encodeModel(m);
}

const meta = (key: string, value: string) => ({ key, value });
/** Field data as a length-delimited string, for fields newer than the schema. */
const laterField = (no: number, text: string) => ({ no, wireType: WireType.LengthDelimited, data: new BinaryWriter().string(text).finish() });
const INT4_WEIGHTS = [3, -5, 7, -8];
const FLOAT8_SHIFT = [1, 0.5, 2, -1];
const INT4_SCALE = 0.125;

/**
 * An IR 10 model (opset 21) that uses what ONNX added after 1.10, for the partitioner to keep:
 * h = Tanh(x * DequantizeLinear(Wq, s)) with Wq INT4 [4]; f = Cast(F8) with F8 FLOAT8E4M3FN [4];
 * y = ScaleShift(h, f) = (h + f) * h, a model-local function with an overload, value_info and
 * metadata_props. metadata_props on the model, the graph, nodes, initializers, inputs, outputs and the
 * value_info of h; a device configuration on the model that two nodes name; a quantization annotation
 * on Wq; and fields newer than ONNX 1.20 (numbers 98 on the model, 99 on node `shift`). Cut after h.
 */
export function ir10Model(): Uint8Array {
  const packed = new Uint8Array(INT4_WEIGHTS.length / 2);
  INT4_WEIGHTS.forEach((v, i) => { packed[i >> 1] |= (v & 0xf) << (i % 2 ? 4 : 0); });
  const pair = [{ configurationId: 'pair', pipelineStage: 0 }];
  const shift = create(NodeProtoSchema, {
    name: 'shift', opType: 'ScaleShift', domain: 'tabgrid.test', overload: 'v2', input: ['h', 'f'], output: ['y'], metadataProps: [meta('stage', 'second')],
  });
  shift.$unknown = [laterField(99, 'node field from a later ONNX')];
  const model = create(ModelProtoSchema, {
    irVersion: 10n, producerName: 'tabgrid-tests',
    opsetImport: [{ domain: '', version: 21n }, { domain: 'tabgrid.test', version: 1n }],
    metadataProps: [meta('license', 'MIT')],
    configuration: [{ name: 'pair', numDevices: 2, device: ['gpu0', 'gpu1'] }],
    functions: [{
      name: 'ScaleShift', domain: 'tabgrid.test', overload: 'v2', input: ['a', 'b'], output: ['c'], opsetImport: [{ domain: '', version: 21n }],
      node: [{ opType: 'Add', input: ['a', 'b'], output: ['t'] }, { opType: 'Mul', input: ['t', 'a'], output: ['c'] }],
      valueInfo: [info('t')],
      metadataProps: [meta('computes', '(a + b) * a')],
    }],
    graph: {
      name: 'ir10',
      metadataProps: [meta('graph', 'ir10')],
      node: [
        { name: 'dq', opType: 'DequantizeLinear', input: ['Wq', 's'], output: ['W'], metadataProps: [meta('weight', 'int4')], deviceConfigurations: pair },
        { name: 'mul', opType: 'Mul', input: ['x', 'W'], output: ['m'] },
        { name: 'act', opType: 'Tanh', input: ['m'], output: ['h'], deviceConfigurations: pair },
        { name: 'f8', opType: 'Cast', input: ['F8'], output: ['f'], attribute: [{ name: 'to', type: AttrType.INT, i: BigInt(T.FLOAT) }] },
        shift,
      ],
      initializer: [
        { name: 'Wq', dims: [BigInt(W)], dataType: T.INT4, rawData: packed, metadataProps: [meta('bits', '4')] },
        floatTensor('s', [], [INT4_SCALE]),
        // 1, 0.5, 2 and -1 in FLOAT8E4M3FN.
        { name: 'F8', dims: [BigInt(W)], dataType: T.FLOAT8E4M3FN, rawData: new Uint8Array([0x38, 0x30, 0x40, 0xb8]), metadataProps: [meta('bits', '8')] },
      ],
      input: [info('x', ['n', W], T.FLOAT, { unit: 'volt' })],
      output: [info('y', ['n', W], T.FLOAT, { unit: 'watt' })],
      valueInfo: [info('h', ['n', W], T.FLOAT, { crosses: 'the cut' })],
      quantizationAnnotation: [{ tensorName: 'Wq', quantParameterTensorNames: [meta('SCALE_TENSOR', 's')] }],
    },
  });
  model.$unknown = [laterField(98, 'model field from a later ONNX')];
  return encodeModel(model);
}

/** What ir10Model computes, in plain arithmetic: x is [n, 4], row-major. */
export function ir10Reference(x: Float32Array): number[] {
  return Array.from(x, (v, i) => {
    const h = Math.tanh(v * INT4_WEIGHTS[i % W] * INT4_SCALE);
    return (h + FLOAT8_SHIFT[i % W]) * h;
  });
}

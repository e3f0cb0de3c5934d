/**
 * Small ONNX graphs with awkward topology, built in code for the partitioner's tests: chains, diamonds,
 * skip connections, outputs produced early, weights shared across the graph, Constant nodes, an If
 * whose branches read outer-scope tensors, and graphs that must be refused. Inputs are float32 [N, 4]
 * unless said otherwise, with no value_info for intermediate tensors (as exporters usually write them).
 */
import { create } from '@bufbuild/protobuf';
import { AttributeProto_AttributeType as AttrType, ValueInfoProtoSchema } from 'onnx-buf';
import { decodeModel, encodeModel } from '../../server/onnx/onnx-codec.js';
import { type GraphInit as Graph, type NodeInit as Node, T, type TensorInit, type ValueInfoInit, encodeGraph, floatTensor, tensorInfo } from './onnx-build.js';
import { seeded } from './models.js';

const W = 4;

function info(name: string, dims: (number | string)[] = ['n', W], elemType: number = T.FLOAT): ValueInfoInit {
  return tensorInfo(name, elemType, dims);
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

/**
 * The graph as the partitioner sees it: compute nodes in a topological order, and the weights they
 * read (initializers and the outputs of Constant nodes) with their sizes. Constant nodes are weights,
 * not steps: they get no place in the order and are copied into every stage that reads them.
 */
import {
  type GraphProto, type ModelProto, type NodeProto, type SparseTensorProto, type TensorProto, TensorProto_DataLocation, TensorProto_DataType,
} from 'onnx-buf';
import { AppError } from '../../shared/errors.js';

/** A tensor whose value is in the model file: an initializer, a sparse initializer or a Constant node. */
export interface Weight {
  name: string;
  bytes: number;
  elements: number;
  source:
    | { kind: 'initializer'; tensor: TensorProto }
    | { kind: 'sparse'; tensor: SparseTensorProto }
    | { kind: 'constant'; node: NodeProto };
}

export interface ComputeNode {
  node: NodeProto;
  /** Position in the file, for stable ordering and error messages. */
  fileIndex: number;
  /** Distinct tensors read, including outer-scope names read by If/Loop/Scan bodies. */
  reads: string[];
  writes: string[];
  /** The subset of `reads` that are weights. */
  weightReads: string[];
  /** Multiply-accumulates per output position, estimated from the weight sizes of Conv/MatMul/Gemm. */
  macs: number;
}

export interface GraphAnalysis {
  model: ModelProto;
  graph: GraphProto;
  /** Compute nodes (every node but Constant) in topological order. */
  nodes: ComputeNode[];
  weights: Map<string, Weight>;
  /** Graph inputs that are not initializers, in declared order. */
  inputs: string[];
  outputs: string[];
  /** Tensor name -> position in `nodes` of the node that writes it. */
  producer: Map<string, number>;
}

const MAC_OPS = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'ConvInteger', 'MatMulInteger', 'QLinearConv', 'QLinearMatMul']);

/** Bytes per element by ONNX elem type (4-bit types count half a byte, 2-bit ones a quarter). */
const ELEM_BYTES: Record<number, number> = {
  1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
  17: 1, 18: 1, 19: 1, 20: 1, 21: 0.5, 22: 0.5, 23: 0.5, 24: 1, 25: 0.25, 26: 0.25,
};

function elementCount(dims: readonly bigint[]): number {
  let n = 1;
  for (const d of dims) n *= Number(d);
  return n;
}

function tensorSize(t: TensorProto | undefined): { bytes: number; elements: number } {
  if (!t) return { bytes: 0, elements: 0 };
  if (t.dataLocation === TensorProto_DataLocation.EXTERNAL) {
    throw new AppError('INVALID_MODEL', `weight ${t.name} is stored in an external data file; the partitioner needs every weight inside the model file`);
  }
  const elements = elementCount(t.dims);
  if (t.rawData.length > 0) return { bytes: t.rawData.length, elements };
  if (t.dataType === TensorProto_DataType.STRING) {
    return { bytes: t.stringData.reduce((s, b) => s + b.length, 0), elements };
  }
  return { bytes: Math.ceil(elements * (ELEM_BYTES[t.dataType] ?? 4)), elements };
}

function constantSize(node: NodeProto): { bytes: number; elements: number } {
  let bytes = 0;
  let elements = 0;
  for (const a of node.attribute) {
    if (a.t) ({ bytes, elements } = tensorSize(a.t));
    else if (a.sparseTensor?.values) {
      bytes = tensorSize(a.sparseTensor.values).bytes + tensorSize(a.sparseTensor.indices).bytes;
      elements = elementCount(a.sparseTensor.dims);
    } else if (a.floats.length || a.ints.length) {
      elements = a.floats.length + a.ints.length;
      bytes = a.floats.length * 4 + a.ints.length * 8;
    } else if (a.name === 'value_float' || a.name === 'value_int') {
      elements = 1;
      bytes = a.name === 'value_float' ? 4 : 8;
    }
  }
  return { bytes, elements };
}

/** The graphs held by a node's attributes: If branches, Loop and Scan bodies. */
export function subgraphsOf(node: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of node.attribute) {
    if (a.g) out.push(a.g);
    out.push(...a.graphs);
  }
  return out;
}

/** Names a subgraph reads from enclosing scopes: used inside (at any depth) but not defined there. */
export function outerScopeReads(g: GraphProto): Set<string> {
  const defined = new Set<string>();
  for (const v of g.input) defined.add(v.name);
  for (const t of g.initializer) defined.add(t.name);
  for (const s of g.sparseInitializer) defined.add(s.values?.name ?? '');
  for (const n of g.node) for (const o of n.output) defined.add(o);
  const free = new Set<string>();
  const use = (name: string) => { if (name && !defined.has(name)) free.add(name); };
  for (const n of g.node) {
    for (const i of n.input) use(i);
    for (const sub of subgraphsOf(n)) for (const f of outerScopeReads(sub)) use(f);
  }
  for (const o of g.output) use(o.name);
  return free;
}

function collectWeights(graph: GraphProto): Map<string, Weight> {
  const weights = new Map<string, Weight>();
  for (const t of graph.initializer) {
    weights.set(t.name, { name: t.name, ...tensorSize(t), source: { kind: 'initializer', tensor: t } });
  }
  for (const s of graph.sparseInitializer) {
    const name = s.values?.name ?? '';
    const bytes = tensorSize(s.values).bytes + tensorSize(s.indices).bytes;
    weights.set(name, { name, bytes, elements: elementCount(s.dims), source: { kind: 'sparse', tensor: s } });
  }
  for (const n of graph.node) {
    if (n.opType !== 'Constant' || n.domain !== '' || n.output.length !== 1) continue;
    weights.set(n.output[0], { name: n.output[0], ...constantSize(n), source: { kind: 'constant', node: n } });
  }
  return weights;
}

/**
 * Orders compute nodes topologically; among ready nodes the one earliest in the file goes first, so a
 * file that is already in order keeps its order. Refuses a graph with a cycle, a tensor written twice,
 * or a read of a tensor that nothing provides.
 */
export function analyzeGraph(model: ModelProto): GraphAnalysis {
  const graph = model.graph;
  if (!graph || graph.node.length === 0) throw new AppError('INVALID_MODEL', 'the model has no graph nodes');
  const weights = collectWeights(graph);
  const inputs = graph.input.map((v) => v.name).filter((n) => !weights.has(n));
  const outputs = graph.output.map((v) => v.name);
  const available = new Set([...inputs, ...weights.keys()]);

  const pending: ComputeNode[] = [];
  graph.node.forEach((node, fileIndex) => {
    const writes = node.output.filter((o) => o);
    if (writes.length === 1 && weights.get(writes[0])?.source.kind === 'constant') return;
    const reads = new Set(node.input.filter((i) => i));
    for (const sub of subgraphsOf(node)) for (const f of outerScopeReads(sub)) reads.add(f);
    const weightReads = [...reads].filter((r) => weights.has(r));
    const macs = MAC_OPS.has(node.opType) ? Math.max(0, ...weightReads.map((w) => weights.get(w)!.elements)) : 0;
    pending.push({ node, fileIndex, reads: [...reads], writes, weightReads, macs });
  });

  const writer = new Map<string, ComputeNode>();
  for (const c of pending) {
    for (const w of c.writes) {
      if (writer.has(w) || available.has(w)) throw new AppError('INVALID_MODEL', `tensor ${w} is written more than once (node ${describeNode(c)})`);
      writer.set(w, c);
    }
  }
  const waiting = new Map<ComputeNode, number>();
  const readers = new Map<ComputeNode, ComputeNode[]>();
  for (const c of pending) {
    let count = 0;
    for (const r of c.reads) {
      const w = writer.get(r);
      if (w) {
        count++;
        const list = readers.get(w);
        if (list) list.push(c);
        else readers.set(w, [c]);
      } else if (!available.has(r)) {
        throw new AppError('INVALID_MODEL', `node ${describeNode(c)} reads tensor ${r}, which no node, graph input or initializer provides`);
      }
    }
    waiting.set(c, count);
  }

  const ready = pending.filter((c) => waiting.get(c) === 0);
  const nodes: ComputeNode[] = [];
  while (ready.length > 0) {
    let best = 0;
    for (let i = 1; i < ready.length; i++) if (ready[i].fileIndex < ready[best].fileIndex) best = i;
    const [c] = ready.splice(best, 1);
    nodes.push(c);
    for (const r of readers.get(c) ?? []) {
      const left = waiting.get(r)! - 1;
      waiting.set(r, left);
      if (left === 0) ready.push(r);
    }
  }
  if (nodes.length < pending.length) {
    const stuck = pending.find((c) => waiting.get(c)! > 0)!;
    throw new AppError('INVALID_MODEL', `the graph has a cycle through node ${describeNode(stuck)}`);
  }
  for (const o of outputs) {
    if (!writer.has(o) && !available.has(o)) throw new AppError('INVALID_MODEL', `graph output ${o} is not produced by any node`);
  }
  const producer = new Map<string, number>();
  nodes.forEach((c, i) => { for (const w of c.writes) producer.set(w, i); });
  return { model, graph, nodes, weights, inputs, outputs, producer };
}

export function describeNode(c: ComputeNode): string {
  return `${c.node.name || `#${c.fileIndex}`} (${c.node.opType})`;
}

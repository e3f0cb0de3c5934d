/**
 * Writes one stage as a self-contained ONNX model: the stage's compute nodes, copies of the weights
 * they read (initializers and Constant nodes), and declared inputs and outputs under their original
 * names, so that stage k's outputs feed stage k + 1 by name. Nodes, weights and value declarations are
 * copied whole, metadata_props and device configurations included. The model's IR version, opsets,
 * metadata, model-local functions and device configurations are the original's, and so are the graph's
 * metadata and the quantization annotations of the tensors the stage holds. Fields newer than the
 * schema (ONNX 1.20) on the model and the graph are carried as they are; training_info is not (a stage
 * is for inference).
 */
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, type ValueInfoProto } from 'onnx-buf';
import type { GraphAnalysis } from './graph-order.js';
import { encodeModel } from './onnx-codec.js';

export interface StageLayout {
  /** 1-based stage number. */
  index: number;
  count: number;
  /** Node positions [from, to) in the analysis order. */
  from: number;
  to: number;
  /** Tensors the stage receives; ignored for the first stage, which takes the model's own inputs. */
  inputs: string[];
  /** Tensors the stage hands on; ignored for the last stage, which gives the model's own outputs. */
  outputs: string[];
}

export interface BuiltStage { bytes: Uint8Array; nodes: number; weightBytes: number }

/** `infoOf` gives the declaration (name and tensor type) of a tensor that crosses a cut. */
export function buildStageModel(a: GraphAnalysis, stage: StageLayout, infoOf: (name: string) => ValueInfoProto): BuiltStage {
  const { graph, model } = a;
  const first = stage.index === 1;
  const last = stage.index === stage.count;
  const compute = a.nodes.slice(stage.from, stage.to);
  const outputs = last ? graph.output : stage.outputs.map(infoOf);

  const used = new Set<string>();
  for (const c of compute) for (const w of c.weightReads) used.add(w);
  for (const o of outputs) if (a.weights.has(o.name)) used.add(o.name);
  // Kept in file order, so a stage reads like the slice of the original that it is.
  const constants = graph.node.filter((n) => n.opType === 'Constant' && used.has(n.output[0] ?? '') && a.weights.get(n.output[0])?.source.kind === 'constant');
  const initializers = graph.initializer.filter((t) => used.has(t.name));
  const sparse = graph.sparseInitializer.filter((s) => used.has(s.values?.name ?? ''));
  let weightBytes = 0;
  for (const w of used) weightBytes += a.weights.get(w)!.bytes;

  // Models before IR 4 list their initializers among the graph inputs; keep that for the copies.
  const initializerInputs = graph.input.filter((v) => a.weights.has(v.name) && used.has(v.name));
  const realInputs = first ? graph.input.filter((v) => !a.weights.has(v.name)) : stage.inputs.map(infoOf);

  const written = new Set(compute.flatMap((c) => c.writes));
  const outputNames = new Set(outputs.map((o) => o.name));
  const valueInfo = graph.valueInfo.filter((v) => written.has(v.name) && !outputNames.has(v.name));
  const held = new Set([...used, ...written, ...realInputs.map((v) => v.name)]);

  const stageGraph = create(GraphProtoSchema, {
    name: `${graph.name || 'graph'}_stage${stage.index}`,
    docString: graph.docString,
    node: [...constants, ...compute.map((c) => c.node)],
    initializer: initializers,
    sparseInitializer: sparse,
    input: [...realInputs, ...initializerInputs],
    output: outputs,
    valueInfo,
    quantizationAnnotation: graph.quantizationAnnotation.filter((q) => held.has(q.tensorName)),
    metadataProps: graph.metadataProps,
  });
  const stageModel = create(ModelProtoSchema, {
    irVersion: model.irVersion,
    opsetImport: model.opsetImport,
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: model.modelVersion,
    docString: `TabGrid stage ${stage.index} of ${stage.count}`,
    metadataProps: model.metadataProps,
    functions: model.functions,
    configuration: model.configuration,
    graph: stageGraph,
  });
  stageGraph.$unknown = graph.$unknown;
  stageModel.$unknown = model.$unknown;
  const bytes = encodeModel(stageModel);
  return { bytes, nodes: constants.length + compute.length, weightBytes };
}

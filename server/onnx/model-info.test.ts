import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OCR_DET_MODEL, int64Model, mlpModel, unknownOpModel } from '../../test/helpers/models.js';
import { readModelInfo } from './model-info.js';
import { validateModel } from './validate-model.js';

describe('model info and validation', () => {
  it('reads inputs, outputs and opsets of a synthetic model', () => {
    expect(readModelInfo(mlpModel())).toEqual({
      inputs: [{ name: 'x', dtype: 'float32', shape: ['batch', 4] }],
      outputs: [{ name: 'y', dtype: 'float32', shape: ['batch', 3] }],
      opsets: { 'ai.onnx': 13 },
      nodes: 5,
    });
    expect(readModelInfo(int64Model()).inputs).toEqual([{ name: 'ids', dtype: 'int64', shape: ['n', 5] }]);
  });

  it('reads PP-OCRv4 detection', async () => {
    const info = await validateModel(new Uint8Array(fs.readFileSync(OCR_DET_MODEL)));
    expect(info.inputs).toEqual([{ name: 'x', dtype: 'float32', shape: ['p2o.DynamicDimension.0', 3, 'p2o.DynamicDimension.1', 'p2o.DynamicDimension.2'] }]);
    expect(info.outputs[0].shape[1]).toBe(1);
    expect(info.opsets['ai.onnx']).toBe(11);
  });

  it('refuses bytes that are not ONNX, and a model onnxruntime cannot load, with the reason', async () => {
    await expect(validateModel(new TextEncoder().encode('hello, not a model'))).rejects.toThrow(/not an ONNX model/);
    await expect(validateModel(new Uint8Array(0))).rejects.toThrow(/not an ONNX model/);
    await expect(validateModel(unknownOpModel())).rejects.toThrow(/onnxruntime cannot load the model: .*NoSuchOperator/);
    const truncated = mlpModel().subarray(0, 200);
    await expect(validateModel(truncated)).rejects.toMatchObject({ code: 'INVALID_MODEL' });
  });
});

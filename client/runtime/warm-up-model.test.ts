import * as ortNode from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { WARM_UP_MODEL } from './warm-up-model.js';

describe('warm-up model', () => {
  it('is a valid ONNX model that onnxruntime loads and runs: y = x', async () => {
    const session = await ortNode.InferenceSession.create(WARM_UP_MODEL);
    try {
      expect([session.inputNames, session.outputNames]).toEqual([['x'], ['y']]);
      const out = await session.run({ x: new ortNode.Tensor('float32', Float32Array.from([2.5]), [1]) });
      expect(Array.from(out.y!.data as Float32Array)).toEqual([2.5]);
    } finally {
      await session.release();
    }
  });
});

/**
 * The smallest model onnxruntime-web will load: y = Identity(x), float32 [1], opset 13 (71 bytes, written by
 * onnx-proto). Creating a session for it makes onnxruntime-web fetch, compile and instantiate its WebAssembly
 * runtime, which is what a volunteer's first task would otherwise wait for after its model arrived.
 */
export const WARM_UP_MODEL: Uint8Array = Uint8Array.from([
  8, 7, 58, 61, 10, 16, 10, 1, 120, 18, 1, 121, 34, 8, 73, 100, 101, 110, 116, 105, 116, 121, 18, 7, 119, 97, 114, 109,
  45, 117, 112, 90, 15, 10, 1, 120, 18, 10, 10, 8, 8, 1, 18, 4, 10, 2, 8, 1, 98, 15, 10, 1, 121, 18, 10, 10, 8, 8, 1, 18,
  4, 10, 2, 8, 1, 66, 4, 10, 0, 16, 13,
]);

/**
 * Where the server serves onnxruntime-web's runtime files (.mjs glue and .wasm), and where pages load them from.
 */
export const ORT_PATH = '/ort/';

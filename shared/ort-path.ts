/**
 * Where the server serves onnxruntime-web's runtime files (.mjs glue and .wasm), and where pages load them from.
 *
 * The path names the version, so the server can let browsers cache the files for a year without asking again
 * (`immutable`): an upgrade changes the path, and a page never mixes one version's glue with another's .wasm.
 * A literal, not read from disk, because pages import it too; ort-path.test.ts checks it against the
 * onnxruntime-web that is installed, so bumping the dependency without changing it fails the tests.
 */
export const ORT_VERSION = '1.30.0';

export const ORT_PATH = `/ort/${ORT_VERSION}/`;

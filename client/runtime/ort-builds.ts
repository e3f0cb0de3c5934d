/**
 * onnxruntime-web's two builds, each loaded only where its backend is used:
 * - `onnxruntime-web/wasm` (ort.wasm.min.mjs, which loads ort-wasm-simd-threaded.wasm, 14 MB): CPU only. Every
 *   model's first tasks run on it, so a volunteer's first result waits for it.
 * - `onnxruntime-web` (ort.min.mjs, which loads ort-wasm-simd-threaded.jsep.wasm, 28 MB, with WebGPU's JSEP):
 *   imported only for a WebGPU session (the trial worker's timing, a model that moved to WebGPU).
 * Fetching, compiling and starting the runtime is what the first result waited for: in a module worker in
 * Chromium 156 on 2 busy cores, 2.3 to 2.7 s for the first build against 4.4 to 7 s for the second, while the
 * session and first run of a small model after it take 50 to 100 ms.
 *
 * Each build is a runtime of its own (its own memory, `env` and Tensor class). Sessions read their feeds by
 * type, dims and data, so a tensor made by one build feeds the other's sessions (ort-tensors.ts uses the first).
 */
import type * as Ort from 'onnxruntime-web';
import * as ortWasm from 'onnxruntime-web/wasm';
import { Backend } from './backend-choice.js';

export type OrtModule = typeof Ort;

/**
 * Sets a build's environment. Without cross-origin isolation there is no SharedArrayBuffer, so wasm must run on
 * one thread or session creation fails.
 */
function configure(ort: OrtModule, wasmPaths: string): OrtModule {
  ort.env.wasm.wasmPaths = wasmPaths;
  if (!globalThis.crossOriginIsolated) ort.env.wasm.numThreads = 1;
  ort.env.logLevel = 'error';
  return ort;
}

export class OrtBuilds {
  /** The CPU-only build, there from the start (its .wasm is fetched with its first session). */
  readonly wasm: OrtModule;
  private gpu: Promise<OrtModule> | null = null;

  /** `wasmPaths`: where onnxruntime-web's .mjs/.wasm files are served (ORT_PATH on the server's origin). */
  constructor(private readonly wasmPaths: string) {
    this.wasm = configure(ortWasm, wasmPaths);
  }

  /** The build that runs `backend`: the JSEP build is imported with the first WebGPU session. */
  for(backend: Backend): Promise<OrtModule> {
    if (backend !== Backend.webgpu) return Promise.resolve(this.wasm);
    // A failed import (a network error) must not stick: the next WebGPU session may try again.
    this.gpu ??= import('onnxruntime-web').then((ort) => configure(ort, this.wasmPaths), (err: unknown) => {
      this.gpu = null;
      throw err;
    });
    return this.gpu;
  }
}

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ORT_PATH, ORT_VERSION } from './ort-path.js';

describe('ORT_PATH', () => {
  it('names the version of onnxruntime-web that is installed', () => {
    // package.json is not in onnxruntime-web's "exports": find it beside a file that is.
    const wasm = createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm');
    const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(wasm), '..', 'package.json'), 'utf8')) as { name: string; version: string };
    expect(pkg.name).toBe('onnxruntime-web');
    expect(ORT_VERSION).toBe(pkg.version);
    expect(ORT_PATH).toBe(`/ort/${pkg.version}/`);
  });
});

/**
 * Which onnxruntime-web backend a model runs on, and why, in words a volunteer can read.
 * WebGPU is not always faster: on a software adapter (SwiftShader) it is 20 to 100 times slower than
 * WASM, and small models can lose to WASM even on a real GPU, so the choice is measured, not assumed.
 */

export const Backend = { webgpu: 'webgpu', wasm: 'wasm' } as const;
export type Backend = (typeof Backend)[keyof typeof Backend];

export function isBackend(s: string | null | undefined): s is Backend {
  return s === Backend.webgpu || s === Backend.wasm;
}

/** One backend's trial on a task: its timed run in ms, or why it failed. */
export type Trial = { backend: Backend; ms: number } | { backend: Backend; error: string };

export interface BackendChoice { backend: Backend; reason: string }

/** "41 ms", "2,390 ms", "3.7 ms". */
export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms).toLocaleString('en-US')} ms`;
}

/**
 * Picks the faster of the trials that succeeded. `gpuLabel` names the adapter ("software adapter
 * swiftshader") so the reason says what WebGPU ran on. Returns null when every trial failed.
 */
export function pickFaster(trials: readonly Trial[], gpuLabel?: string): BackendChoice | null {
  const ok = trials.filter((t): t is { backend: Backend; ms: number } => 'ms' in t);
  if (ok.length === 0) return null;
  const [best] = [...ok].sort((a, b) => a.ms - b.ms);
  const others = formatTrials(trials.filter((t) => t !== best), gpuLabel);
  const reason = `${best.backend}: ${formatMs(best.ms)}${on(best.backend, gpuLabel)}` + (others ? ` vs ${others}` : '');
  return { backend: best.backend, reason };
}

const on = (b: Backend, gpuLabel?: string) => (b === Backend.webgpu && gpuLabel ? ` on ${gpuLabel}` : '');

/** "wasm 41 ms, webgpu failed on software adapter swiftshader (unsupported op)". */
export function formatTrials(trials: readonly Trial[], gpuLabel?: string): string {
  return trials.map((t) =>
    'ms' in t ? `${t.backend} ${formatMs(t.ms)}${on(t.backend, gpuLabel)}` : `${t.backend} failed${on(t.backend, gpuLabel)} (${t.error})`).join(', ');
}

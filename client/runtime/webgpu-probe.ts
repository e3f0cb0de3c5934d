/**
 * Finds out whether this browser can run WebGPU and on what, before anything is computed, so the page can
 * say so and the hello message can describe the device. Requesting an adapter allocates nothing on the GPU.
 */
import type { AdapterInfo } from '../../shared/protocol.js';

export interface WebGpuProbe {
  available: boolean;
  /** Why WebGPU is not available, in words; null when it is. */
  problem: string | null;
  adapter?: AdapterInfo;
  limits?: Record<string, number>;
  /** A short human label, e.g. "software adapter swiftshader (google)". */
  label?: string;
}

/** Clips to the lengths the server's hello schema accepts, so a long driver string cannot get us refused. */
function clip(s: string | undefined, max: number): string | undefined {
  return s ? s.slice(0, max) : undefined;
}

/** Asks for a WebGPU adapter and reads its info and the limits that bound model size. */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  if (typeof navigator === 'undefined' || !('gpu' in navigator) || !navigator.gpu) {
    return { available: false, problem: 'this browser has no WebGPU (navigator.gpu is missing)' };
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    return { available: false, problem: `WebGPU adapter request failed: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!adapter) return { available: false, problem: 'WebGPU is present but no adapter was offered (GPU blocked or disabled)' };

  const info = adapter.info;
  // isFallbackAdapter moved from GPUAdapter to GPUAdapterInfo; older browsers have only the former.
  const legacy = adapter as GPUAdapter & { isFallbackAdapter?: boolean };
  const isFallback = info?.isFallbackAdapter ?? legacy.isFallbackAdapter ?? false;
  const adapterInfo: AdapterInfo = {
    vendor: clip(info?.vendor, 128),
    architecture: clip(info?.architecture, 128),
    device: clip(info?.device, 128),
    description: clip(info?.description, 256),
    isFallbackAdapter: isFallback,
  };
  const limits = {
    maxBufferSize: adapter.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
  };
  return { available: true, problem: null, adapter: adapterInfo, limits, label: adapterLabel(adapterInfo) };
}

/** "software adapter swiftshader (google)" or "GPU ampere (nvidia)", for status lines and backend reasons. */
export function adapterLabel(a: AdapterInfo): string {
  const name = a.architecture || a.device || a.description || 'unknown';
  const vendor = a.vendor && a.vendor !== name ? ` (${a.vendor})` : '';
  return `${a.isFallbackAdapter ? 'software adapter' : 'GPU'} ${name}${vendor}`;
}

/**
 * onnxruntime-web leaves rejected promises behind when a WebGPU device goes away (buffers it was mapping).
 * Such a rejection can arrive just before the device's `lost` promise settles, so whoever catches it judges
 * it a moment later: a problem only if no loss is known by then. Used by the inference worker and, when
 * onnxruntime runs on the page itself, by the page.
 */
export const GPU_DEBRIS_WAIT_MS = 500;

/** The rejection's text, and whether it looks like that leftover. */
export function rejectionText(reason: unknown): { text: string; gpuDebris: boolean } {
  const text = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
  return { text, gpuDebris: /GPUBuffer|mapAsync|GPUDevice|device (was |is )?(lost|destroyed)/i.test(text) };
}

/**
 * The inference worker: runs tasks with an OrtRunner off the page's main thread (see inference-messages.ts).
 * Outputs go back as transferred buffers, not copies.
 */
import type { Tensor } from '../../shared/tensor.js';
import type { FromWorker, ToWorker } from './inference-messages.js';
import { OrtRunner } from './ort-runner.js';

interface WorkerScope {
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
  addEventListener(type: 'message', fn: (e: MessageEvent<ToWorker>) => void): void;
  addEventListener(type: 'unhandledrejection', fn: (e: PromiseRejectionEvent) => void): void;
}
const scope = globalThis as unknown as WorkerScope;
let runner: OrtRunner | null = null;

/** The buffers of the outputs that own them whole can move to the page; a view into a larger one is copied. */
function movable(outputs: Tensor[]): { outputs: Tensor[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const out = outputs.map((t) => {
    const d = t.data;
    if (d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && d.buffer instanceof ArrayBuffer && !transfer.includes(d.buffer)) {
      transfer.push(d.buffer);
      return t;
    }
    return { ...t, data: d.slice() };
  });
  for (const t of out) if (!transfer.includes(t.data.buffer as ArrayBuffer)) transfer.push(t.data.buffer as ArrayBuffer);
  return { outputs: out, transfer };
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'init':
      runner = new OrtRunner({
        ...m.setup,
        onChoice: (modelHash, choice) => scope.postMessage({ type: 'choice', modelHash, choice }),
        onActivity: (message) => scope.postMessage({ type: 'activity', message }),
        onDeviceLost: (message) => scope.postMessage({ type: 'device-lost', message }),
      });
      return;
    case 'run':
      try {
        if (!runner) throw new Error('the inference worker was not set up');
        const outcome = await runner.run(m.task, m.modelUrl);
        const { outputs, transfer } = movable(outcome.outputs);
        scope.postMessage({ type: 'done', id: m.id, outcome: { ...outcome, outputs } }, transfer);
      } catch (err) {
        scope.postMessage({ type: 'failed', id: m.id, message: err instanceof Error ? err.message : String(err) });
      }
      return;
    case 'lose-device':
      scope.postMessage({ type: 'device-destroyed', id: m.id, destroyed: (await runner?.loseDeviceForTest()) ?? false });
  }
}

scope.addEventListener('message', (e) => { void handle(e.data); });

// onnxruntime-web leaves rejected promises behind when a WebGPU device goes away (buffers it was mapping):
// those are expected then. Anything else is reported to the page as a problem.
scope.addEventListener('unhandledrejection', (e) => {
  const text = e.reason instanceof Error ? `${e.reason.name}: ${e.reason.message}` : String(e.reason);
  e.preventDefault();
  if (/GPUBuffer|mapAsync|GPUDevice|device (was |is )?(lost|destroyed)/i.test(text)) {
    setTimeout(() => { if (!runner?.deviceLost) scope.postMessage({ type: 'problem', message: `inference worker: ${text}` }); }, 500);
    return;
  }
  scope.postMessage({ type: 'problem', message: `inference worker: ${text}` });
});

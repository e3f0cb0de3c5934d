/**
 * A completed job's outputs downloaded as DIR/<output>.npy, with the manifest of image inputs beside them
 * (DIR/inputs-manifest.json) when one was written at submit.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { JobView } from '../shared/protocol.js';
import type { ApiClient } from './api-client.js';

export const MANIFEST_NAME = 'inputs-manifest.json';

/** Where submit keeps an image job's manifest when no --out is given: the current folder. */
export function pendingManifestPath(jobId: string): string {
  return `${jobId}.${MANIFEST_NAME}`;
}

/**
 * Writes every output of `job` into `dir`, and copies `./<job>.inputs-manifest.json` there as
 * inputs-manifest.json when it exists. Returns the files written.
 */
export async function downloadResults(api: ApiClient, job: JobView, dir: string): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const out of job.outputs) {
    const bytes = await api.result(job.id, out.name);
    const file = path.join(dir, `${out.name.replace(/[^\w.-]/g, '_')}.npy`);
    fs.writeFileSync(file, bytes);
    written.push(file);
  }
  const pending = pendingManifestPath(job.id);
  const manifest = path.join(dir, MANIFEST_NAME);
  if (fs.existsSync(pending)) {
    fs.copyFileSync(pending, manifest);
    written.push(manifest);
  }
  return written;
}

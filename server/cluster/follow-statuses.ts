/**
 * Calls `changed` when a job's status changes here (created, cancelled, completed, failed, deleted), not on each
 * of its many progress events: that is when the other servers should look at the jobs at once.
 */
import type { AppEvents } from '../events.js';
import type { Store } from '../store/store.js';

export function followStatuses(events: AppEvents, store: Pick<Store, 'getJob'>, changed: () => void): void {
  const last = new Map<string, string>();
  events.on('job:changed', (jobId) => {
    const status = store.getJob(jobId)?.status ?? 'deleted';
    if (last.get(jobId) === status) return;
    if (status === 'running') last.set(jobId, status); else last.delete(jobId);
    changed();
  });
}

/**
 * The server's internal event bus: what the scheduler and the worker sockets report, for live views
 * (the dashboard) to follow without either knowing about them.
 */
import { EventEmitter } from 'node:events';

export interface AppEventMap {
  'job:changed': [jobId: string];
  'worker:joined': [workerId: string];
  'worker:left': [workerId: string];
  'volunteer:quarantined': [volunteerId: string];
}

export class AppEvents extends EventEmitter<AppEventMap> {
  constructor() {
    super();
    this.setMaxListeners(1000);
  }
}

/** The server's runs under the name the job service knows them by (it queues canary answers with `compute`). */
export { ServerRuns as CanaryService } from './server-runs.js';

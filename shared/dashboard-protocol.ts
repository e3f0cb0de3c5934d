/**
 * The researchers' dashboard feed: a socket.io namespace `/dashboard`, keyed by an API key in the handshake
 * (`io('/dashboard', { auth: { key } })`). The server pushes; the page only listens (cancel and downloads go
 * through the REST API with the same key). A key sees its own jobs; an admin key sees every job.
 */
import type { AdapterInfo, JobView } from './protocol.js';

export const DASHBOARD_NAMESPACE = '/dashboard';

export interface WorkerView {
  workerId: string;
  volunteerId: string;
  kind: 'browser' | 'node';
  backends: string[];
  adapter?: AdapterInfo;
  site: string | null;
  /** The network origin it connected from (an IPv4 address or /N, an IPv6 /64): quorums count distinct ones. */
  origin: string;
  connectedAt: number;
  /** The server it is connected to, on a network of servers sharing one database (absent on a lone server). */
  server?: string;
}

/** Cumulative tasks done per job at one moment; the page derives throughput and ETA from successive samples. */
export interface ThroughputSample { at: number; done: Record<string, number> }

/** How replication went for one job. */
export interface JobVerification {
  /** Replicas that returned a result. */
  returned: number;
  /** Returned replicas per task that has any: 1 under adaptive replication, 2+ under a quorum or a dispute. */
  replicasPerTask: number | null;
  /** Replicas whose volunteer was caught out (quarantined) or whose answer a settled result refuted. */
  rejected: number;
  /** Leases lost to workers: lapsed, errored, handed back. */
  lost: { expired: number; failed: number; released: number };
  /** The latest reasons replicas failed, newest first. */
  recentErrors: { at: number; reason: string }[];
}

/** Agreement between worker classes (backend|GPU vendor|architecture), over every verified comparison. */
export interface ClassAgreement { a: string; b: string; agree: number; disagree: number; agreement: number | null }

export interface VerificationView {
  /** Over all comparisons: agreeing pairs / all pairs; null before any. */
  agreement: number | null;
  classes: ClassAgreement[];
  jobs: Record<string, JobVerification>;
}

export interface DashboardSnapshot {
  now: number;
  /** Which jobs this key sees: its own, or every job for an admin key. */
  scope: 'own' | 'all';
  jobs: JobView[];
  workers: WorkerView[];
  samples: ThroughputSample[];
  verification: VerificationView;
}

export interface DashboardServerEvents {
  /** Everything, once on connect. */
  'dashboard:snapshot': (s: DashboardSnapshot) => void;
  /** Jobs that changed since the last push (at most one push per flush interval). */
  'dashboard:jobs': (jobs: JobView[]) => void;
  /** The full list of connected workers, after joins and leaves (coalesced). */
  'dashboard:workers': (workers: WorkerView[]) => void;
  'dashboard:sample': (s: ThroughputSample) => void;
  'dashboard:verification': (v: VerificationView) => void;
}

// The page sends nothing on this namespace.
export type DashboardClientEvents = Record<string, never>;

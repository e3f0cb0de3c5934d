/**
 * The volunteer's remembered choice and settings, per site: whether they opted in (and when), the throttle
 * and whether to pause when the tab is hidden. The volunteer page keeps one record; the widget keeps one
 * per embedding origin, so opting in on one site says nothing about another.
 * Without usable storage (a cross-site frame with third-party storage blocked) the record lives in memory:
 * the choice then lasts for this visit only and the next visit asks again.
 */
import { clampThrottle } from '../net/duty-cycle.js';

export const CONSENT_KEY = 'tabgrid.consent';

/** The widget's key for one embedding origin. */
export function widgetConsentKey(site: string | null): string {
  return site ? `${CONSENT_KEY}@${site}` : `${CONSENT_KEY}@unknown-site`;
}

export interface Prefs {
  /** Percent of GPU time to use, 5 to 100. */
  throttle: number;
  pauseWhenHidden: boolean;
}

export interface ConsentRecord extends Prefs {
  /** When the volunteer opted in; null when they have not, or stopped since. */
  consentAt: number | null;
}

/** Returns a storage that can be read and written now, else null (access alone can throw SecurityError). */
export function usableStorage(get: () => Storage | null | undefined = () => globalThis.localStorage): Storage | null {
  try {
    const s = get();
    if (!s) return null;
    const probe = 'tabgrid.probe';
    s.setItem(probe, '1');
    s.removeItem(probe);
    return s;
  } catch {
    return null;
  }
}

function parse(raw: string | null, defaults: Prefs): ConsentRecord {
  const base: ConsentRecord = { ...defaults, consentAt: null };
  if (!raw) return base;
  try {
    const v = JSON.parse(raw) as Partial<ConsentRecord>;
    return {
      throttle: typeof v.throttle === 'number' ? clampThrottle(v.throttle) : base.throttle,
      pauseWhenHidden: typeof v.pauseWhenHidden === 'boolean' ? v.pauseWhenHidden : base.pauseWhenHidden,
      consentAt: typeof v.consentAt === 'number' && Number.isFinite(v.consentAt) ? v.consentAt : null,
    };
  } catch {
    return base;
  }
}

export class ConsentStore {
  private record: ConsentRecord;

  constructor(private storage: Storage | null, private readonly key: string, defaults: Prefs) {
    this.record = parse(this.readRaw(), { ...defaults, throttle: clampThrottle(defaults.throttle) });
  }

  /** True when the record survives a reload. */
  get persistent(): boolean {
    return this.storage !== null;
  }

  get(): ConsentRecord {
    return { ...this.record };
  }

  /**
   * Switches to storage that became usable later (the Storage Access API granted it). A choice stored there
   * earlier wins over an in-memory one only if it is a consent; otherwise what this visit chose is saved.
   */
  adopt(storage: Storage): void {
    this.storage = storage;
    const stored = parse(this.readRaw(), this.record);
    if (this.record.consentAt === null && stored.consentAt !== null) this.record = stored;
    this.write();
  }

  remember(prefs: Prefs, now: number = Date.now()): void {
    this.record = { ...prefs, throttle: clampThrottle(prefs.throttle), consentAt: now };
    this.write();
  }

  /** Stop: the choice is forgotten; the settings are kept for next time. */
  forget(): void {
    this.record = { ...this.record, consentAt: null };
    this.write();
  }

  savePrefs(prefs: Partial<Prefs>): void {
    this.record = { ...this.record, ...prefs, ...(prefs.throttle !== undefined ? { throttle: clampThrottle(prefs.throttle) } : {}) };
    this.write();
  }

  private readRaw(): string | null {
    try { return this.storage?.getItem(this.key) ?? null; } catch { return null; }
  }

  private write(): void {
    try { this.storage?.setItem(this.key, JSON.stringify(this.record)); } catch { /* quota or revoked: memory has it */ }
  }
}

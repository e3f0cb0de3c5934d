/**
 * Configuration: flags win over the environment, unset values take defaults, bad values are refused at start-up.
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('loadConfig', () => {
  it('takes the metrics token from the flag, else TABGRID_METRICS_TOKEN; unset, the metrics are open', () => {
    expect(loadConfig({}, {}).metricsToken).toBeUndefined();
    expect(loadConfig({}, { TABGRID_METRICS_TOKEN: 'from-the-env' }).metricsToken).toBe('from-the-env');
    expect(loadConfig({ metricsToken: 'from-the-flag' }, { TABGRID_METRICS_TOKEN: 'from-the-env' }).metricsToken).toBe('from-the-flag');
    expect(() => loadConfig({ metricsToken: 'short' }, {})).toThrow(/8 characters/);
  });

  it('reads the retention settings', () => {
    const c = loadConfig({}, { TABGRID_RETAIN_DAYS: '7', TABGRID_BLOB_GRACE_MS: '1000' });
    expect(c).toMatchObject({ retainDays: 7, blobGraceMs: 1000, retentionSweepMs: 60_000 });
    expect(loadConfig({ retainDays: 2 }, { TABGRID_RETAIN_DAYS: '7' }).retainDays).toBe(2);
    expect(loadConfig({}, {}).retainDays).toBeUndefined();
  });
});

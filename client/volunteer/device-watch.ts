/**
 * What the browser says about the tab and the machine that may pause the work: page visibility and,
 * where the browser exposes it, the Battery Status API (Chromium does; Firefox and Safari do not).
 */

export type BatteryState =
  | { supported: true; charging: boolean; level: number }
  | { supported: false; why: string };

interface BatteryManagerLike extends EventTarget { charging: boolean; level: number }
type NavigatorWithBattery = Navigator & { getBattery?: () => Promise<BatteryManagerLike> };

/** Reads the battery and reports every change; says why when the browser does not expose it. */
export async function watchBattery(nav: Navigator, onChange: (b: BatteryState) => void): Promise<BatteryState> {
  const getBattery = (nav as NavigatorWithBattery).getBattery;
  if (typeof getBattery !== 'function') {
    return { supported: false, why: 'this browser does not expose the Battery Status API, so a low battery cannot pause the work' };
  }
  try {
    const battery = await getBattery.call(nav);
    const read = (): BatteryState => ({ supported: true, charging: battery.charging, level: battery.level });
    battery.addEventListener('levelchange', () => onChange(read()));
    battery.addEventListener('chargingchange', () => onChange(read()));
    return read();
  } catch (err) {
    return { supported: false, why: `the browser refused the battery status (${err instanceof Error ? err.message : String(err)})` };
  }
}

/** Reports whether the page is hidden now and on every change. */
export function watchVisibility(doc: Document, onChange: (hidden: boolean) => void): boolean {
  doc.addEventListener('visibilitychange', () => onChange(doc.visibilityState === 'hidden'));
  return doc.visibilityState === 'hidden';
}

/** "82%, charging", or why the battery is not watched. */
export function describeBattery(b: BatteryState | null): string {
  if (!b) return 'checking…';
  if (!b.supported) return `not watched: ${b.why}`;
  return `${Math.round(b.level * 100)}%, ${b.charging ? 'charging' : 'on battery'}`;
}

/**
 * Tasks per second over time as an SVG area chart, drawn with DOM calls (no inline styles, so the page's
 * CSP needs no 'unsafe-inline'). The x axis spans the samples there are, from one minute up to `maxSpanMs`.
 */
import type { RatePoint } from './dashboard-state.js';
import { formatRate } from './dashboard-state.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 720;
const H = 180;
const PAD = { left: 44, right: 12, top: 12, bottom: 24 };

function svg<K extends keyof SVGElementTagNameMap>(doc: Document, tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = doc.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/** A round axis maximum at or above `v`: 1, 2, 5, 10, 20, 50... */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 5, 10].find((m) => m * p >= v) ?? 10) * p;
}

/** The time axis: at least a minute, at most `maxMs`, else as long as the data, in whole minutes. */
export function chartSpan(points: RatePoint[], now: number, maxMs = 10 * 60_000): number {
  const first = points.find((p) => p.at >= now - maxMs)?.at ?? now;
  return Math.min(maxMs, Math.max(60_000, Math.ceil((now - first) / 60_000) * 60_000));
}

export function drawThroughput(doc: Document, host: Element, points: RatePoint[], now: number): void {
  const spanMs = chartSpan(points, now);
  const root = svg(doc, 'svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'chart' });
  const recent = points.filter((p) => p.at >= now - spanMs);
  const title = svg(doc, 'title', {});
  title.textContent = recent.length ? `Throughput, last ${Math.round(spanMs / 60_000)} minutes` : 'No throughput yet';
  root.append(title);

  const max = niceMax(Math.max(0, ...recent.map((p) => p.perSec)));
  const x = (at: number) => PAD.left + ((at - (now - spanMs)) / spanMs) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (v / max) * (H - PAD.top - PAD.bottom);

  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    root.append(svg(doc, 'line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'grid' }));
    const label = svg(doc, 'text', { x: PAD.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' });
    label.textContent = formatRate(v);
    root.append(label);
  }
  for (const [at, text] of [[now - spanMs, `-${Math.round(spanMs / 60_000)} min`], [now, 'now']] as const) {
    const label = svg(doc, 'text', { x: x(at), y: H - 6, class: 'axis', 'text-anchor': at === now ? 'end' : 'start' });
    label.textContent = text;
    root.append(label);
  }

  if (recent.length >= 1) {
    const line = recent.map((p) => `${x(p.at).toFixed(1)},${y(p.perSec).toFixed(1)}`);
    const first = recent[0]!;
    const last = recent[recent.length - 1]!;
    root.append(svg(doc, 'path', {
      d: `M${x(first.at).toFixed(1)},${y(0)} L${line.join(' L')} L${x(last.at).toFixed(1)},${y(0)} Z`, class: 'area',
    }));
    root.append(svg(doc, 'polyline', { points: line.join(' '), class: 'line' }));
  } else {
    const empty = svg(doc, 'text', { x: W / 2, y: H / 2, class: 'empty', 'text-anchor': 'middle' });
    empty.textContent = 'Throughput appears here once tasks are being verified.';
    root.append(empty);
  }
  host.replaceChildren(root);
}

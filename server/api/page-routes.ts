/**
 * The three pages and the widget's loader, each with the headers it needs: the volunteer page (`/`), the
 * widget's frame (`/widget/frame`, frameable from any origin), the researchers' dashboard (`/dashboard`)
 * and `/widget.js` (loadable by any page, even a cross-origin-isolated one). Mounted before the static
 * files, which serve the pages' assets.
 *
 * onnxruntime-web's runtime files (its dist/ folder) are served here too, at ORT_PATH (shared/ort-path.ts), which
 * names their version: browsers keep them a year without asking again.
 *
 * widget.js carries a site token for the page that loaded it (server/auth/site-tokens.ts): the built loader holds
 * a placeholder that is replaced per request, so the script varies by the requesting page and is cached privately.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import express, { type Request, type Response } from 'express';
import { ORT_PATH, ORT_VERSION } from '../../shared/ort-path.js';
import { type SiteTokens, requestingSite } from '../auth/site-tokens.js';

/** The text the built loader holds where its site token goes; client/widget/loader.ts spells it the same. */
export const SITE_TOKEN_PLACEHOLDER = '__TABGRID_SITE_TOKEN__';

/** onnxruntime-web compiles WebAssembly ('wasm-unsafe-eval') and imports its glue from ORT_PATH ('self'). */
const COMPUTE_CSP = [
  "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "connect-src 'self'", "img-src 'self' data:",
  "style-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'none'",
];

export const PAGE_HEADERS = {
  /** The volunteer page: nobody may frame it (a framed Start button could be clickjacked). */
  volunteer: {
    'content-security-policy': [...COMPUTE_CSP, "frame-ancestors 'none'"].join('; '),
    'x-frame-options': 'DENY',
  },
  /**
   * The widget's frame: any site may embed it. CORP cross-origin and COEP require-corp let a host page that
   * is itself cross-origin isolated (COEP) embed it too; everything the frame loads is its own origin.
   */
  widgetFrame: {
    'content-security-policy': [...COMPUTE_CSP, 'frame-ancestors *'].join('; '),
    'cross-origin-resource-policy': 'cross-origin',
    'cross-origin-embedder-policy': 'require-corp',
  },
  dashboard: {
    'content-security-policy': [
      "default-src 'self'", "script-src 'self'", "connect-src 'self'", "img-src 'self' data:", "style-src 'self'",
      "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ].join('; '),
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
  },
  /**
   * widget.js is a classic script on other sites' pages, some cross-origin isolated. It holds a token for the
   * requesting page, so it varies by Origin and Referer and no shared cache may hand one site's copy to another.
   */
  widgetScript: {
    'cross-origin-resource-policy': 'cross-origin',
    'access-control-allow-origin': '*',
    'cache-control': 'private, max-age=300',
    vary: 'Origin, Referer',
  },
} as const;

/**
 * Headers for the built assets. The inference worker's script declares COEP require-corp: a dedicated worker
 * started by a document that is cross-origin isolated (the widget's frame) must be, or it is refused; in other
 * pages it changes nothing, since everything the worker loads is this origin's.
 */
export function assetHeaders(res: Response, file: string): void {
  if (/inference-worker-[\w-]+\.js$/.test(file)) res.set('cross-origin-embedder-policy', 'require-corp');
}

/**
 * onnxruntime-web's dist/ folder, found the way Node finds the package, so it is the same whether the server runs
 * from its sources (tsx) or from the build in dist/node/. (package.json is not in the package's "exports".)
 */
export function ortDist(): string {
  return path.dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
}

/** The version of the onnxruntime-web whose dist/ folder this is, from the package.json beside it. */
function ortVersionIn(dir: string): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, '..', 'package.json'), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/** For a path whose files never change: `public, max-age=31536000, immutable`. */
const ONE_YEAR = { maxAge: '1y', immutable: true } as const;

export interface PageDeps {
  clientDist: string;
  /** Signs the site token written into widget.js; without it the loader is served as built and credits no site. */
  siteTokens?: SiteTokens;
  /** onnxruntime-web's dist/ folder (default: the installed package's, ortDist()). */
  ortDir?: string;
}

export function pageRouter(deps: PageDeps): express.Router {
  const r = express.Router();
  const send = (res: Response, file: string, headers: Record<string, string>, type = 'html') => {
    const full = path.join(deps.clientDist, file);
    if (!fs.existsSync(full)) {
      res.status(503).type('text/plain').send(`${file} is not built: run \`npm run build\` (npm install does it).`);
      return;
    }
    res.set({ ...headers, 'x-content-type-options': 'nosniff' });
    if (type === 'html') res.set('cache-control', 'no-cache');
    res.type(type).sendFile(full);
  };

  // Cached for good only when the files are the version the path names: were onnxruntime-web upgraded without
  // ORT_VERSION, browsers would otherwise keep the old version's glue beside the new one's .wasm for a year.
  const ortDir = deps.ortDir ?? ortDist();
  const ortCaching = ortVersionIn(ortDir) === ORT_VERSION ? ONE_YEAR : {};
  r.use(ORT_PATH, express.static(ortDir, { ...ortCaching, index: false, fallthrough: false }));
  // The unversioned path, for pages built before ORT_PATH named the version; revalidated on every load.
  r.use('/ort', express.static(ortDir, { index: false, fallthrough: false }));
  r.get(['/', '/index.html'], (_req, res) => send(res, 'index.html', PAGE_HEADERS.volunteer));
  r.get(['/widget/frame', '/widget/frame.html'], (_req, res) => send(res, 'widget/frame.html', PAGE_HEADERS.widgetFrame));
  r.get(['/dashboard', '/dashboard/', '/dashboard/index.html'], (_req, res) => send(res, 'dashboard/index.html', PAGE_HEADERS.dashboard));
  r.get('/widget.js', async (req, res) => {
    const full = path.join(deps.clientDist, 'widget.js');
    const built = await fs.promises.readFile(full, 'utf8').catch(() => null);
    if (built === null) {
      send(res, 'widget.js', PAGE_HEADERS.widgetScript, 'text/javascript');
      return;
    }
    res.set({ ...PAGE_HEADERS.widgetScript, 'x-content-type-options': 'nosniff' });
    res.type('text/javascript').send(built.replace(SITE_TOKEN_PLACEHOLDER, siteToken(req, deps.siteTokens)));
  });
  return r;
}

/** A token for the site whose page asked for widget.js; empty when none can be named (the frame then credits no site). */
function siteToken(req: Request, tokens: SiteTokens | undefined): string {
  const site = requestingSite(req.get('origin'), req.get('referer'));
  return site && tokens ? tokens.issue(site) : '';
}

/**
 * The routes an express app actually registers, read from its router stack: what the OpenAPI document is
 * compared with (server/api/openapi.test.ts, test/integration/operations.test.ts), so a route added without
 * being described fails a test instead of going unlisted. Express 5 keeps a mounted sub-app only in a closure,
 * so the sub-apps are passed in beside the app; one the app mounts and the caller did not pass is an error.
 */
import type express from 'express';

export interface RouteEntry { method: string; path: string }

interface Layer {
  name: string;
  rawPath?: string | string[];
  slash?: boolean;
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

type Routable = express.Express | express.Router;

const stackOf = (r: Routable): Layer[] => ((r as express.Express).router ?? r as unknown as { stack: Layer[] }).stack as Layer[];

const join = (prefix: string, p: string) => (prefix === '' || prefix === '/' ? p : p === '/' ? prefix : prefix + p);

/** Every (method, path) of `app` and of the sub-apps it mounts (`mounted`, each at its `mountpath`), sorted. */
export function listRoutes(app: Routable, mounted: express.Express[] = []): RouteEntry[] {
  const out = new Map<string, RouteEntry>();
  let apps = 0;
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const p of paths) {
          for (const [m, on] of Object.entries(layer.route.methods)) {
            if (!on || m === '_all') continue;
            const entry = { method: m.toUpperCase(), path: join(prefix, p) };
            out.set(`${entry.method} ${entry.path}`, entry);
          }
        }
      } else if (layer.name === 'mounted_app') {
        apps++;
      } else if (layer.handle?.stack) {
        const mount = layer.slash || typeof layer.rawPath !== 'string' ? '' : layer.rawPath;
        walk(layer.handle.stack, join(prefix, mount));
      }
    }
  };
  walk(stackOf(app), '');
  if (apps !== mounted.length) throw new Error(`the app mounts ${apps} sub-apps; ${mounted.length} were given to list`);
  for (const sub of mounted) walk(stackOf(sub), typeof sub.mountpath === 'string' && sub.mountpath !== '/' ? sub.mountpath : '');
  return [...out.values()].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
}

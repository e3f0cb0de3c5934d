/**
 * Model bytes, kept in Cache Storage so a volunteer downloads each model once. Model URLs are
 * content-addressed (the hash is in the path), so a cached response never goes stale.
 * Cache Storage is missing on insecure origins and throws SecurityError in cross-site iframes with
 * third-party storage blocked; then we fetch every time rather than fail.
 */

export const MODEL_CACHE_NAME = 'tabgrid-models-v1';
/** Models kept; older entries are dropped first (Cache Storage keys come back in insertion order). */
const MAX_CACHED_MODELS = 8;

async function openCache(): Promise<Cache | null> {
  try {
    if (typeof caches === 'undefined') return null;
    return await caches.open(MODEL_CACHE_NAME);
  } catch {
    return null;
  }
}

async function download(url: string): Promise<Response> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`model download failed: HTTP ${res.status} for ${url}`);
  return res;
}

/** Returns the bytes at `url`, from the cache when there, else from the network (then cached). */
export async function fetchModelBytes(url: string): Promise<Uint8Array> {
  const cache = await openCache();
  if (cache) {
    const hit = await cache.match(url).catch(() => undefined);
    if (hit) return new Uint8Array(await hit.arrayBuffer());
  }
  const res = await download(url);
  if (cache) {
    try {
      await cache.put(url, res.clone());
      await evictOldest(cache);
    } catch {
      // Quota exceeded or storage revoked mid-way: the model still runs, it just is not kept.
    }
  }
  return new Uint8Array(await res.arrayBuffer());
}

async function evictOldest(cache: Cache): Promise<void> {
  const keys = await cache.keys();
  for (const req of keys.slice(0, Math.max(0, keys.length - MAX_CACHED_MODELS))) await cache.delete(req);
}

/** Hashes of the models (shards) in the cache, so the server can prefer this tab for their tasks. */
export async function cachedModelHashes(): Promise<string[]> {
  const cache = await openCache();
  if (!cache) return [];
  const keys = await cache.keys().catch(() => [] as readonly Request[]);
  return keys.map((k) => /\/models\/([0-9a-f]{64})$/.exec(new URL(k.url).pathname)?.[1]).filter((h): h is string => Boolean(h));
}

/**
 * Which site embeds the widget's frame, so the server credits it too. The browser says so, not the host
 * page (which could claim any site): `location.ancestorOrigins` where it exists (Chromium, Safari), else the
 * origin of `document.referrer` (the loader asks for an `origin` referrer policy on the frame).
 */

export function embeddingOrigin(ancestorOrigins: readonly string[] | undefined, referrer: string, self: string): string | null {
  const candidates = [ancestorOrigins?.[0], referrer];
  for (const c of candidates) {
    if (!c) continue;
    try {
      const u = new URL(c);
      if ((u.protocol === 'http:' || u.protocol === 'https:') && u.origin !== self) return u.origin;
      if (u.origin === self) return null;
    } catch {
      // "null" (an opaque origin) or junk: try the next source
    }
  }
  return null;
}

/**
 * Which site embeds the widget's frame. The browser says so, not the host page (which could claim any site):
 * `location.ancestorOrigins` where it exists (Chromium, Safari), else the origin of `document.referrer` (the
 * loader asks for an `origin` referrer policy on the frame). The frame shows it and keys its remembered consent
 * by it; the server credits a site only on the site token it signed when it served widget.js to that page.
 */

/** The site token the loader put in the frame's fragment (`#site-token=...`), or null when there is none. */
export function readSiteToken(hash: string): string | null {
  const token = new URLSearchParams(hash.replace(/^#/, '')).get('site-token');
  return token && /^[\w-]+\.[\w-]+$/.test(token) && token.length <= 512 ? token : null;
}

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

/**
 * If-None-Match for GET/HEAD (RFC 9110 §13.1.2), evaluated by the origin.
 * Koa's `ctx.fresh` (the `fresh` package) is written for caches and answers
 * "not fresh" whenever the request says `Cache-Control: no-cache`, which
 * `fetch()` adds to every conditional request; but that directive tells caches
 * to revalidate with the origin (RFC 9111 §5.2.1.4), and a 304 from the origin
 * is exactly that revalidation.
 */

/** Entity tags of an If-None-Match value; `*` as the single element '*'. Malformed elements are skipped. */
function entityTags(header: string): string[] {
  if (header.trim() === '*') return ['*'];
  return [...header.matchAll(/(?:W\/)?"[\x21\x23-\x7e\x80-\xff]*"/g)].map((m) => m[0]);
}

/** Weak comparison (RFC 9110 §8.8.3.2): equal opaque-tags, a W/ prefix on either side ignored. */
function weakEqual(a: string, b: string): boolean {
  const opaque = (t: string) => (t.startsWith('W/') ? t.slice(2) : t);
  return opaque(a) === opaque(b);
}

/** True when a GET or HEAD should be answered 304 Not Modified for the current `etag`. */
export function notModified(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return entityTags(ifNoneMatch).some((t) => t === '*' || weakEqual(t, etag));
}

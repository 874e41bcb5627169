/**
 * Durations in the Go / Kubernetes notation (`720h`, `1h30m`, `90s`, `500ms`), the
 * only units CEL's `duration()` understands too, so the CRD can compare them in
 * validation rules. No days: a "day" is ambiguous around leap seconds and DST in
 * people's heads; `24h` is not.
 */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
const DURATION_RE = new RegExp(DURATION_PATTERN);
const PART_RE = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function isDuration(v: unknown): v is string {
  return typeof v === 'string' && DURATION_RE.test(v);
}

/** Milliseconds of a duration string; throws RangeError on anything else. */
export function parseDuration(v: string): number {
  if (!isDuration(v)) throw new RangeError(`${JSON.stringify(v)} is not a duration such as 720h, 1h30m or 90s`);
  let ms = 0;
  for (const m of v.matchAll(PART_RE)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Math.round(ms);
}

/** A short human form for messages: 744h -> "31d", 90m -> "1h30m". */
export function formatDuration(ms: number): string {
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${ms}ms`;
  const s = Math.round(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const parts = [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', sec && !d ? `${sec}s` : ''].filter(Boolean);
  return parts.join('') || '0s';
}

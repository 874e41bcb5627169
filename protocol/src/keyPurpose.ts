/** What a signing key is for. Credit tokens are spent; abuse tokens are presented (see DESIGN "Abuse control"). */
export const KEY_PURPOSES = ['credit', 'permanent', 'transient'] as const;
export type KeyPurpose = (typeof KEY_PURPOSES)[number];

export function isKeyPurpose(v: unknown): v is KeyPurpose {
  return typeof v === 'string' && (KEY_PURPOSES as readonly string[]).includes(v);
}

/** A monthly transient epoch, "YYYY-MM" in UTC. */
export function epochOf(date: Date): string {
  return `${date.getUTCFullYear().toString().padStart(4, '0')}-${(date.getUTCMonth() + 1).toString().padStart(2, '0')}`;
}

const EPOCH_RE = /^(\d{4})-(0[1-9]|1[0-2])$/;

export function isEpoch(v: unknown): v is string {
  return typeof v === 'string' && EPOCH_RE.test(v);
}

/** First instant of an epoch and of the next one (UTC). */
export function epochBounds(epoch: string): { start: Date; end: Date } {
  const m = EPOCH_RE.exec(epoch);
  if (!m) throw new RangeError(`epoch ${JSON.stringify(epoch)} is not YYYY-MM`);
  const y = Number(m[1]);
  const mo = Number(m[2]) - 1;
  return { start: new Date(Date.UTC(y, mo, 1)), end: new Date(Date.UTC(y, mo + 1, 1)) };
}

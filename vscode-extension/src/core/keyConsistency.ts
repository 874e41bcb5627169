/**
 * Key consistency (DESIGN "Privacy invariants"; docs/privacy.md). An issuer that shows each
 * user a different key, or a key per group of users, could recognise that user's tokens at
 * redemption. The client therefore:
 *
 * - issues only under keys taken from a directory fetched anonymously (a fresh Tor circuit,
 *   at a random time of the refill schedule, never right before an issuance): the issuance
 *   side is never asked which key to use;
 * - refuses a directory with more keys per purpose than MAX_KEYS_PER_PURPOSE, or with two
 *   "current" keys for one purpose;
 * - pins what it saw for each key id for the key's lifetime (purpose, epoch, windows), and
 *   which key owns each truncated key id (the byte a TokenRequest carries): a changed
 *   public key behind a known id, changed metadata, or a pinned key that vanished before the
 *   end of its redemption window is an alarm;
 * - pins the issuer name the TokenChallenge is derived from;
 * - optionally compares with a second vantage point (a mirror of the directory).
 *
 * Every failure is a KeyConsistencyError with a specific message; issuance stops.
 * Pure functions: the I/O is in LlmTorClient.
 */
import { bytesEqual, directoryBoundViolation, fromBase64Url, toBase64Url, tokenKeyId, type IssuerDirectory, type KeyPurpose } from '@llmtor/protocol';
import { isIssuing, keysOf, pickIssuingKey, type KeyWindow } from './epoch.js';

export class KeyConsistencyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyConsistencyError';
  }
}

function sameKey(a: string, b: string): boolean {
  try {
    return bytesEqual(fromBase64Url(a, 'token-key'), fromBase64Url(b, 'token-key'));
  } catch {
    return false;
  }
}

/** Throws KeyConsistencyError unless `key` is what the public (Tor-fetched) directory shows. */
export function checkKeyConsistency(key: Pick<KeyWindow, 'tokenKey' | 'purpose' | 'epoch'>, publicDirectory: IssuerDirectory): void {
  const match = publicDirectory['token-keys'].find((k) => sameKey(k['token-key'], key.tokenKey));
  if (!match) {
    throw new KeyConsistencyError(
      `the ${key.purpose} key the issuer offered is not in the directory everyone sees over Tor; it could be a key made to recognise you. No tokens were requested under it.`,
    );
  }
  if ((match.purpose ?? 'credit') !== key.purpose) {
    throw new KeyConsistencyError(`the issuer offered a key as "${key.purpose}" that the public directory lists as "${match.purpose ?? 'credit'}"`);
  }
  if (key.purpose === 'transient' && match.epoch !== key.epoch) {
    throw new KeyConsistencyError(`the issuer offered a transient key for epoch ${key.epoch ?? '?'} that the public directory lists for ${match.epoch ?? 'no epoch'}`);
  }
}

/** What the client saw for one key, kept until the key's redemption window ends. */
export interface PinnedKey {
  tokenKey: string;
  purpose: KeyPurpose;
  epoch?: string;
  notBeforeSec?: number;
  issuanceNotAfterSec?: number;
  redemptionNotAfterSec?: number;
  firstSeenAt: number;
}

export interface PinDoc {
  v: 1;
  /** The issuer name the TokenChallenge is derived from (configured or first seen). */
  issuerName?: string;
  /** base64url token_key_id → what was seen. */
  keys: Record<string, PinnedKey>;
  /** The last directory that passed every check, and when it was fetched. */
  directory?: { doc: IssuerDirectory; fetchedAt: number };
  /**
   * The last alarm. It stops issuance until the user resets the pins (command "LLM-Tor:
   * Reset Key Pins"): a hostile issuer must not be able to clear it by serving a good directory.
   */
  alarm?: { message: string; at: number };
}

export function emptyPins(): PinDoc {
  return { v: 1, keys: {} };
}

function keyIdOf(tokenKey: string): Uint8Array {
  return tokenKeyId(fromBase64Url(tokenKey, 'token-key'));
}

/** A pinned key stays pinned until its redemption window is over (no end: for good). */
function alive(p: PinnedKey, now: number): boolean {
  return p.redemptionNotAfterSec === undefined || Math.floor(now / 1000) < p.redemptionNotAfterSec;
}

const META = ['purpose', 'epoch', 'notBeforeSec', 'issuanceNotAfterSec', 'redemptionNotAfterSec'] as const;

/**
 * Checks a directory fetched anonymously against the pins and returns the new pins (the
 * input is not changed). Throws KeyConsistencyError with the reason on any alarm.
 * `mirror`: the same directory seen from a second vantage point, which must list the same keys.
 */
export function pinDirectory(pins: PinDoc, dir: IssuerDirectory, now: number, opts: { configuredIssuerName?: string; mirror?: IssuerDirectory } = {}): PinDoc {
  const bound = directoryBoundViolation(dir);
  if (bound) throw new KeyConsistencyError(`Refused the issuer directory: ${bound}. Extra keys can sort users into groups, so no tokens are requested until this is resolved.`);
  for (const purpose of ['credit', 'permanent', 'transient'] as const) {
    const issuing = keysOf(dir, purpose).filter((k) => isIssuing(k, now));
    const newest = pickIssuingKey(dir, purpose, now);
    if (newest && issuing.filter((k) => (k.notBeforeSec ?? 0) === (newest.notBeforeSec ?? 0) && (purpose !== 'transient' || k.epoch === newest.epoch)).length > 1) {
      throw new KeyConsistencyError(`Refused the issuer directory: it shows more than one current ${purpose} key (same not-before), so there is no single key everyone uses.`);
    }
  }
  if (opts.mirror) {
    const a = new Set(dir['token-keys'].map((k) => toBase64Url(keyIdOf(k['token-key']))));
    const b = new Set(opts.mirror['token-keys'].map((k) => toBase64Url(keyIdOf(k['token-key']))));
    if (a.size !== b.size || [...a].some((x) => !b.has(x))) throw new KeyConsistencyError('Refused the issuer directory: the mirror (second vantage point) shows different keys than the server. Someone is being shown a different directory.');
    if ((dir['issuer-name'] ?? '') !== (opts.mirror['issuer-name'] ?? '')) throw new KeyConsistencyError('Refused the issuer directory: the mirror shows a different issuer name.');
  }

  const next: PinDoc = { v: 1, keys: {}, ...(pins.issuerName !== undefined ? { issuerName: pins.issuerName } : {}), ...(pins.alarm ? { alarm: pins.alarm } : {}) };
  const name = opts.configuredIssuerName || dir['issuer-name'];
  if (!opts.configuredIssuerName && pins.issuerName !== undefined && dir['issuer-name'] !== undefined && dir['issuer-name'] !== pins.issuerName) {
    throw new KeyConsistencyError(`Refused the issuer directory: its issuer name changed from ${JSON.stringify(pins.issuerName)} to ${JSON.stringify(dir['issuer-name'])}; tokens made for a new name could be told apart.`);
  }
  if (name !== undefined && (opts.configuredIssuerName || pins.issuerName === undefined)) next.issuerName = name;

  const seenIds = new Set<string>();
  const byTruncated = new Map<number, string>();
  for (const [id, p] of Object.entries(pins.keys)) if (alive(p, now)) byTruncated.set(fromBase64Url(id, 'key id').at(-1)!, id);
  for (const k of dir['token-keys']) {
    const idBytes = keyIdOf(k['token-key']);
    const id = toBase64Url(idBytes);
    seenIds.add(id);
    const seen: PinnedKey = { tokenKey: k['token-key'], purpose: k.purpose ?? 'credit', firstSeenAt: now };
    if (k.epoch !== undefined) seen.epoch = k.epoch;
    if (k['not-before'] !== undefined) seen.notBeforeSec = k['not-before'];
    if (k['issuance-not-after'] !== undefined) seen.issuanceNotAfterSec = k['issuance-not-after'];
    if (k['redemption-not-after'] !== undefined) seen.redemptionNotAfterSec = k['redemption-not-after'];
    const old = pins.keys[id];
    if (old && alive(old, now)) {
      for (const f of META) {
        if (old[f] !== seen[f]) throw new KeyConsistencyError(`Refused the issuer directory: key ${id.slice(0, 12)}… changed its ${f} from ${String(old[f])} to ${String(seen[f])} during its lifetime.`);
      }
      seen.firstSeenAt = old.firstSeenAt;
    }
    const owner = byTruncated.get(idBytes.at(-1)!);
    if (owner !== undefined && owner !== id) {
      throw new KeyConsistencyError(`Refused the issuer directory: a different public key now answers to truncated key id ${idBytes.at(-1)} (pinned for another key that is still valid). A changed key behind a known id is how a user could be singled out.`);
    }
    byTruncated.set(idBytes.at(-1)!, id);
    next.keys[id] = seen;
  }
  for (const [id, p] of Object.entries(pins.keys)) {
    if (seenIds.has(id) || !alive(p, now)) continue;
    throw new KeyConsistencyError(`Refused the issuer directory: the ${p.purpose} key ${id.slice(0, 12)}… it showed before is gone although it is valid until ${p.redemptionNotAfterSec !== undefined ? new Date(p.redemptionNotAfterSec * 1000).toISOString() : 'forever'}. A key shown only for a while can mark the users who got tokens under it.`);
  }
  next.directory = { doc: dir, fetchedAt: now };
  return next;
}

/**
 * The key to issue `purpose` tokens under: THE current key of the last pinned directory.
 * Throws if there is no pinned directory, it is too old, or no key of that purpose issues.
 */
export function issuingKeyFromPins(pins: PinDoc, purpose: KeyPurpose, now: number, maxAgeMs: number): { key: KeyWindow; directory: IssuerDirectory } {
  if (pins.alarm) throw new KeyConsistencyError(`Issuance is stopped: ${pins.alarm.message} (seen ${new Date(pins.alarm.at).toISOString()}; "LLM-Tor: Reset Key Pins" resumes it once you trust the server again).`);
  const d = pins.directory;
  if (!d) throw new KeyConsistencyError('No issuer directory has been fetched over Tor yet; tokens are requested only under keys seen there.');
  if (now - d.fetchedAt > maxAgeMs) throw new KeyConsistencyError(`The issuer directory seen over Tor is older than ${Math.round(maxAgeMs / 3_600_000)} h; tokens wait for the next anonymous fetch.`);
  const key = pickIssuingKey(d.doc, purpose, now);
  if (!key) throw new KeyConsistencyError(`The issuer directory seen over Tor lists no ${purpose} key that is issuing now.`);
  return { key, directory: d.doc };
}

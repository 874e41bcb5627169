/**
 * The set of keys an issuer publishes, with their windows. Pure: the proxy fills
 * it from key files, the operator from its state; both ask it the same questions.
 *
 *   published:  now < redemptionEnd          (listed in the directory, even before notBefore)
 *   issuing:    notBefore <= now < issuanceEnd
 *   redeeming:  notBefore <= now < redemptionEnd
 */
import type { KeyObject } from 'node:crypto';
import { fromBase64Url, fromHex, toHex } from './bytes.js';
import { TOKEN_TYPE_BLIND_RSA } from './constants.js';
import type { DirectoryKey, IssuerDirectory } from './directory.js';
import { publicKeyFromPssSpki, truncatedKeyId } from './keyId.js';
import type { KeyMetadata } from './keyFile.js';
import type { KeyPurpose } from './keyPurpose.js';

export interface KeyEntry {
  meta: KeyMetadata;
  keyId: Uint8Array;
  truncatedId: number;
  publicKey: KeyObject;
  notBefore: number;
  issuanceEnd: number;
  redemptionEnd: number;
}

export function keyEntry(meta: KeyMetadata): KeyEntry {
  return {
    meta,
    keyId: fromHex(meta.keyId),
    truncatedId: truncatedKeyId(fromHex(meta.keyId)),
    publicKey: publicKeyFromPssSpki(fromBase64Url(meta.publicKey, 'publicKey')),
    notBefore: Date.parse(meta.notBefore),
    issuanceEnd: Date.parse(meta.issuanceEnd),
    redemptionEnd: Date.parse(meta.redemptionEnd),
  };
}

export class Keyring {
  private readonly byId = new Map<string, KeyEntry>();

  constructor(entries: Iterable<KeyEntry> = []) {
    for (const e of entries) this.byId.set(e.meta.keyId, e);
  }

  get size(): number {
    return this.byId.size;
  }

  all(): KeyEntry[] {
    return [...this.byId.values()];
  }

  get(keyIdHex: string): KeyEntry | undefined {
    return this.byId.get(keyIdHex);
  }

  /**
   * Key that may sign now for this truncated id (and purpose, if given).
   * `graceMs` also accepts a key whose issuance ended less than that long ago (never
   * past its redemption end): a request that was in flight at a rotation, or a client
   * whose clock is a little behind, is served instead of refused.
   */
  issuing(truncatedId: number, now: number, purpose?: KeyPurpose, graceMs = 0): KeyEntry | undefined {
    let late: KeyEntry | undefined;
    for (const e of this.byId.values()) {
      if (e.truncatedId !== truncatedId || e.notBefore > now || (purpose && e.meta.purpose !== purpose)) continue;
      if (now < e.issuanceEnd) return e;
      if (now < Math.min(e.issuanceEnd + graceMs, e.redemptionEnd)) late = e;
    }
    return late;
  }

  /** Newest key of a purpose (and epoch) that may sign now: what a client should request tokens under. */
  currentIssuing(purpose: KeyPurpose, now: number, epoch?: string): KeyEntry | undefined {
    let best: KeyEntry | undefined;
    for (const e of this.byId.values()) {
      if (e.meta.purpose !== purpose || e.notBefore > now || now >= e.issuanceEnd) continue;
      if (epoch !== undefined && e.meta.epoch !== epoch) continue;
      if (!best || e.notBefore > best.notBefore) best = e;
    }
    return best;
  }

  /** Key under which a token may be redeemed now. */
  redeeming(keyId: Uint8Array, now: number): KeyEntry | undefined {
    const e = this.byId.get(toHex(keyId));
    return e && e.notBefore <= now && now < e.redemptionEnd ? e : undefined;
  }

  /** Truncated ids shared by two keys that are published at `now` (RFC 9578: issuers must avoid this). */
  truncatedCollisions(now: number): number[] {
    const seen = new Map<number, number>();
    for (const e of this.byId.values()) if (now < e.redemptionEnd) seen.set(e.truncatedId, (seen.get(e.truncatedId) ?? 0) + 1);
    return [...seen].filter(([, n]) => n > 1).map(([t]) => t);
  }

  /** The public directory; `issuerName` (the TokenChallenge's) is published for clients to pin. */
  directory(issuerRequestUri: string, now: number, issuerName?: string): IssuerDirectory {
    const keys: DirectoryKey[] = this.all()
      .filter((e) => now < e.redemptionEnd)
      .sort((a, b) => b.notBefore - a.notBefore)
      .map((e) => {
        const k: DirectoryKey = {
          'token-type': TOKEN_TYPE_BLIND_RSA,
          'token-key': e.meta.publicKey,
          'not-before': Math.floor(e.notBefore / 1000),
          purpose: e.meta.purpose,
          'issuance-not-after': Math.floor(e.issuanceEnd / 1000),
          'redemption-not-after': Math.floor(e.redemptionEnd / 1000),
        };
        if (e.meta.epoch) k.epoch = e.meta.epoch;
        return k;
      });
    const dir: IssuerDirectory = { 'issuer-request-uri': issuerRequestUri, 'token-keys': keys };
    if (issuerName !== undefined) dir['issuer-name'] = issuerName;
    return dir;
  }
}

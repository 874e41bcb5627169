/**
 * Which key to use, and when abuse tokens must be renewed (pure; times in ms unless named *Sec).
 *
 * - Credit tokens: issued under the newest credit key whose issuance window is open.
 * - Permanent abuse token: issued once; renewed only when its key stops being redeemable.
 * - Transient abuse token: one per monthly epoch (UTC "YYYY-MM"), under that epoch's key.
 *   At the turn of the month the old token stays in use while its key is still redeemable
 *   and no key for the new epoch is published yet (the operator may publish it a little late).
 */
import { epochBounds, epochOf, type DirectoryKey, type IssuerDirectory, type KeyPurpose } from '@llmtor/protocol';

export interface KeyWindow {
  /** The directory's token-key (base64url SPKI). */
  tokenKey: string;
  purpose: KeyPurpose;
  epoch?: string;
  notBeforeSec?: number;
  issuanceNotAfterSec?: number;
  redemptionNotAfterSec?: number;
}

function toWindow(k: DirectoryKey): KeyWindow {
  const w: KeyWindow = { tokenKey: k['token-key'], purpose: k.purpose ?? 'credit' };
  if (k.epoch !== undefined) w.epoch = k.epoch;
  if (k['not-before'] !== undefined) w.notBeforeSec = k['not-before'];
  if (k['issuance-not-after'] !== undefined) w.issuanceNotAfterSec = k['issuance-not-after'];
  if (k['redemption-not-after'] !== undefined) w.redemptionNotAfterSec = k['redemption-not-after'];
  return w;
}

export function isIssuing(w: KeyWindow, now: number): boolean {
  const s = Math.floor(now / 1000);
  return (w.notBeforeSec ?? 0) <= s && (w.issuanceNotAfterSec === undefined || s < w.issuanceNotAfterSec);
}

export function isRedeemable(w: { redemptionNotAfterSec?: number | undefined }, now: number): boolean {
  return w.redemptionNotAfterSec === undefined || Math.floor(now / 1000) < w.redemptionNotAfterSec;
}

/**
 * The key to request tokens of `purpose` under, or undefined if none is issuing. Keys without
 * a purpose field are credit keys (a plain RFC 9578 directory). For transient keys only the
 * epoch of `now` counts.
 */
export function pickIssuingKey(dir: IssuerDirectory, purpose: KeyPurpose, now: number): KeyWindow | undefined {
  const epoch = epochOf(new Date(now));
  const candidates = dir['token-keys']
    .map(toWindow)
    .filter((w) => w.purpose === purpose && isIssuing(w, now) && (purpose !== 'transient' || w.epoch === epoch));
  // Newest first: the latest not-before is the key the issuer rotated to.
  candidates.sort((a, b) => (b.notBeforeSec ?? 0) - (a.notBeforeSec ?? 0));
  return candidates[0];
}

/** All keys the directory shows for a purpose (for the key-consistency check). */
export function keysOf(dir: IssuerDirectory, purpose: KeyPurpose): KeyWindow[] {
  return dir['token-keys'].map(toWindow).filter((w) => w.purpose === purpose);
}

export interface HeldAbuseToken {
  purpose: 'permanent' | 'transient';
  epoch?: string;
  redemptionNotAfterSec?: number;
}

export type AbuseTokenAction = 'keep' | 'obtain' | 'renew';

/** What to do about the permanent token. */
export function permanentAction(held: HeldAbuseToken | undefined, now: number): AbuseTokenAction {
  if (!held) return 'obtain';
  return isRedeemable(held, now) ? 'keep' : 'renew';
}

/**
 * What to do about the transient token at `now`, given whether the directory already
 * publishes an issuing key for the current epoch.
 */
export function transientAction(held: HeldAbuseToken | undefined, now: number, currentEpochKeyPublished: boolean): AbuseTokenAction {
  if (!held) return 'obtain';
  const current = epochOf(new Date(now));
  if (held.epoch === current && isRedeemable(held, now)) return 'keep';
  // Old epoch: renew as soon as the new key is out; until then keep what still redeems.
  if (currentEpochKeyPublished) return 'renew';
  return isRedeemable(held, now) ? 'keep' : 'renew';
}

/** When the next epoch starts (the moment to look for a new transient key). */
export function nextEpochStart(now: number): number {
  return epochBounds(epochOf(new Date(now))).end.getTime();
}

/** Delay before the next abuse-token check: the epoch turn plus a random spread, so that
 * not every client of the issuer asks in the same second (that would make timing useful). */
export function nextRenewalCheckDelay(now: number, random: () => number = Math.random, spreadMs = 6 * 3_600_000): number {
  return Math.max(0, nextEpochStart(now) - now) + Math.floor(random() * spreadMs);
}

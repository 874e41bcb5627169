/**
 * The pure core of the operator: from the keys found in the Secret, the
 * policy and the time, decide what to do. No I/O, no randomness, no clock:
 * the same input gives the same plan, which is what makes a reconcile after a
 * crash at any point converge (the Secret is the only state that matters).
 *
 * Rules
 * - Credit (and rolling permanent) keys: a successor is generated `publishAhead`
 *   before the current key's period ends and takes over (notBefore) at the end
 *   of the period, so pods and clients have seen it before it is used. The old
 *   key keeps signing until its issuance window ends and verifying until its
 *   redemption window ends. With no key able to sign now (first start, or the
 *   operator was down too long), a key is generated that signs at once.
 * - Forced rotation (annotation `rotate=now` or a time): a new credit key with
 *   notBefore = now + publishAhead; older credit keys stop signing at that
 *   instant (their redemption windows are untouched, so no issued token is
 *   lost). A successor that is published but has not signed yet is withdrawn
 *   and replaced, not joined by another one (no token exists under it).
 * - Emergency rotation (`rotate=compromised`): credit and permanent keys and the
 *   current epoch's transient key are replaced by keys that sign at once; the
 *   old ones stop signing now and, with `revokeRedemption`, stop verifying now.
 * - At most MAX_KEYS_PER_PURPOSE keys per purpose: a rotation request
 *   that would exceed it (an ordinary one already at that bound minus two) is refused.
 * - Transient keys: one per calendar month (UTC), notBefore = first instant of
 *   the month, issuance ends at the month's end, redemption `grace` later; next
 *   month's key is generated `publishAhead` before the month starts.
 * - A key is removed only once its redemption window is over.
 * - Envelope files wrapped under another key-encryption key than the current
 *   one (Key Vault key got a new version, or protection changed) are re-wrapped.
 */
import { MAX_KEYS_PER_PURPOSE, epochBounds, epochOf, type KekRef, type KeyMetadata, type KeyPurpose } from '@llmtor/protocol';
import type { IssuerPolicy } from './spec.js';

export interface ObservedKey {
  meta: KeyMetadata;
  /** Key-encryption key of the file's envelope; null for a plain (unencrypted) file. */
  kek: KekRef | null;
}

export interface PlanInput {
  policy: IssuerPolicy;
  keys: readonly ObservedKey[];
  now: number;
  /** Value of the `llmtor.dev/rotate` annotation, if any. */
  rotateRequest?: string | undefined;
  /** Last rotation request carried out (from the Secret's annotation). */
  handledRotation?: string | undefined;
  /** The key-encryption key new blobs are wrapped with; undefined = not known now (no re-wrap). */
  currentKek?: KekRef | undefined;
  /** Emergency rotation only: the old keys also stop verifying at once (`llmtor.dev/revoke-redemption: "true"`). */
  revokeRedemption?: boolean | undefined;
}

export type GenerateReason = 'bootstrap' | 'scheduled' | 'forced' | 'emergency' | 'epoch';

export interface KeyTemplate {
  purpose: KeyPurpose;
  epoch?: string;
  notBefore: number;
  issuanceEnd: number;
  redemptionEnd: number;
  reason: GenerateReason;
}

export interface Plan {
  /** `rotate=now` is first turned into a fixed time (then reconciled again), so a crash cannot rotate twice. */
  rewriteRotateAnnotation?: string;
  /** The annotation value could not be understood (message for an event / condition). */
  invalidRotateRequest?: string;
  generate: KeyTemplate[];
  /** Keys whose issuance ends earlier (forced rotation). */
  retire: { keyId: string; issuanceEnd: number }[];
  /** Keys past their redemption window. */
  remove: string[];
  /** Published successors that never signed, replaced by a rotation (removed at once: no token exists under them). */
  withdraw: string[];
  /** Keys whose redemption an emergency rotation stopped (removed at once; their tokens are rejected). */
  revoke: string[];
  /** A rotation request that is due but not carried out because `spec.paused` is true (message). */
  pausedRotateRequest?: string;
  /** A rotation request refused (it would publish too many keys); message. The request counts as handled. */
  refusedRotateRequest?: string;
  /** Envelope files to re-wrap under `currentKek`. */
  rewrap: string[];
  /** Rotation request carried out by this plan (to record on the Secret with the new key). */
  handledRotation?: string;
  /** Next instant at which the plan would change (nothing changes before). */
  wakeAt?: number;
  /** When the next credit key takes over (a published successor's notBefore, or the end of the current period). */
  nextRotation?: number;
}

/** A key as the planner sees it: windows in ms. `keyId` is absent for keys this plan generates. */
interface Slot {
  keyId?: string;
  purpose: KeyPurpose;
  epoch?: string;
  notBefore: number;
  issuanceEnd: number;
  redemptionEnd: number;
}

function slotOf(m: KeyMetadata): Slot {
  const s: Slot = { keyId: m.keyId, purpose: m.purpose, notBefore: Date.parse(m.notBefore), issuanceEnd: Date.parse(m.issuanceEnd), redemptionEnd: Date.parse(m.redemptionEnd) };
  if (m.epoch !== undefined) s.epoch = m.epoch;
  return s;
}

/** Same key-encryption key; a file without a fingerprint is re-wrapped once to gain one (it must open to be). */
function sameKek(a: KekRef | null, b: KekRef): boolean {
  return a !== null && a.provider === b.provider && a.keyId === b.keyId && (b.fingerprint === undefined || a.fingerprint === b.fingerprint);
}

interface RollingPolicy {
  period: number;
  issuanceWindow: number;
  redemptionGrace: number;
  publishAhead: number;
}

/** Prefix of an emergency rotation request (`compromised`, recorded as `compromised:<RFC 3339>`). */
export const EMERGENCY_PREFIX = 'compromised';

/** Parses the rotate annotation: 'now', an RFC 3339 time, 'compromised' or 'compromised:<RFC 3339>'. */
export function parseRotateRequest(v: string): { kind: 'now'; emergency: boolean } | { kind: 'at'; at: number; emergency: boolean } | { kind: 'invalid' } {
  let t = v.trim();
  let emergency = false;
  if (t.toLowerCase() === EMERGENCY_PREFIX) return { kind: 'now', emergency: true };
  if (t.toLowerCase().startsWith(`${EMERGENCY_PREFIX}:`)) {
    emergency = true;
    t = t.slice(EMERGENCY_PREFIX.length + 1);
  } else if (t.toLowerCase() === 'now') return { kind: 'now', emergency: false };
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(t)) {
    const at = Date.parse(t);
    if (!Number.isNaN(at)) return { kind: 'at', at, emergency };
  }
  return { kind: 'invalid' };
}

interface Forced {
  emergency: boolean;
  revokeRedemption: boolean;
}

export function plan(input: PlanInput): Plan {
  const { policy, now } = input;
  const out: Plan = { generate: [], retire: [], remove: [], rewrap: [], withdraw: [], revoke: [] };
  const wake: number[] = [];
  const live: Slot[] = [];
  for (const k of input.keys) {
    const s = slotOf(k.meta);
    if (now >= s.redemptionEnd) out.remove.push(k.meta.keyId);
    else live.push(s);
  }
  const request = input.rotateRequest !== undefined ? parseRotateRequest(input.rotateRequest) : undefined;
  const handled = input.handledRotation !== undefined ? Date.parse(input.handledRotation) : Number.NaN;
  const isDone = (at: number) => !Number.isNaN(handled) && handled >= at;
  if (policy.paused) {
    // Paused: nothing is generated, removed or re-wrapped; the status still shows the keys.
    out.remove = [];
    out.nextRotation = nextRotationOf(live, policy.credit.rotationPeriod, now);
    if (request && (request.kind === 'now' || (request.kind === 'at' && request.at <= now && !isDone(request.at)))) {
      out.pausedRotateRequest = `rotation request ${JSON.stringify(input.rotateRequest)} is not carried out while spec.paused is true; it runs when paused is set to false (remove the annotation to cancel it)`;
    }
    return out;
  }

  if (input.currentKek) {
    const cur = input.currentKek;
    for (const k of input.keys) if (k.kek !== null && now < Date.parse(k.meta.redemptionEnd) && !sameKek(k.kek, cur)) out.rewrap.push(k.meta.keyId);
  }

  // --- forced rotation request
  let forced: Forced | undefined;
  if (request !== undefined) {
    if (request.kind === 'now') {
      out.rewriteRotateAnnotation = request.emergency ? `${EMERGENCY_PREFIX}:${new Date(now).toISOString()}` : new Date(now).toISOString();
    } else if (request.kind === 'invalid') {
      out.invalidRotateRequest = `annotation ${JSON.stringify(input.rotateRequest)} is neither "now", "compromised" nor an RFC 3339 time (e.g. 2026-12-01T00:00:00Z); it is ignored`;
    } else if (!isDone(request.at) && request.at <= now) {
      forced = { emergency: request.emergency, revokeRedemption: request.emergency && input.revokeRedemption === true };
      out.handledRotation = new Date(request.at).toISOString();
    } else if (!isDone(request.at)) wake.push(request.at);
  }

  if (forced) {
    // The bound is checked for every purpose first: a request is carried out whole or not at all.
    const purposes: KeyPurpose[] = forced.emergency ? ['credit', ...(policy.permanent.policy === 'Rolling' ? (['permanent'] as const) : [])] : ['credit'];
    const limit = forced.emergency ? MAX_KEYS_PER_PURPOSE : MAX_KEYS_PER_PURPOSE - 2;
    for (const purpose of purposes) {
      const keep = live.filter((s) => s.purpose === purpose && s.notBefore <= now && !forced!.revokeRedemption).length;
      if (keep + 1 > limit) {
        out.refusedRotateRequest = `rotation request ${JSON.stringify(input.rotateRequest)} refused: ${keep} ${purpose} keys are still published and one more would exceed ${limit} (at most ${MAX_KEYS_PER_PURPOSE} per purpose, docs/operator.md)${forced.emergency ? '; add llmtor.dev/revoke-redemption=true to stop the old keys at once' : '; retry once older keys have expired, or use rotate=compromised'}`;
        forced = undefined;
        break;
      }
    }
  }

  const credit: RollingPolicy = {
    period: policy.credit.rotationPeriod,
    issuanceWindow: policy.credit.issuanceWindow,
    redemptionGrace: policy.credit.redemptionGrace,
    publishAhead: policy.credit.publishAhead,
  };
  roll('credit', credit, live, now, forced, out, wake);
  if (policy.permanent.policy === 'Rolling') {
    const p = policy.permanent;
    roll('permanent', { period: p.lifetime, issuanceWindow: p.lifetime, redemptionGrace: p.redemptionGrace, publishAhead: policy.credit.publishAhead }, live, now, forced?.emergency ? forced : undefined, out, wake);
  }
  if (policy.transient.epoch === 'CalendarMonthUTC') {
    const current = epochOf(new Date(now));
    if (forced?.emergency) stopSigning(live.filter((s) => s.purpose === 'transient'), now, forced, out);
    const next = epochOf(epochBounds(current).end);
    const wanted = [current];
    const nextStart = epochBounds(next).start.getTime();
    if (now >= nextStart - policy.credit.publishAhead) wanted.push(next);
    else wake.push(nextStart - policy.credit.publishAhead);
    for (const e of wanted) {
      const { start, end } = epochBounds(e);
      // A key of this epoch that signs now or will: nothing to do (an emergency rotation cut the old one to now).
      if (live.some((s) => s.purpose === 'transient' && s.epoch === e && s.issuanceEnd > now)) continue;
      // After an emergency rotation the replacement signs at once (this epoch) or from the epoch's start (next one).
      const emergency = forced?.emergency === true && e === current;
      const t: KeyTemplate = { purpose: 'transient', epoch: e, notBefore: emergency ? now : start.getTime(), issuanceEnd: end.getTime(), redemptionEnd: end.getTime() + policy.transient.grace, reason: emergency ? 'emergency' : 'epoch' };
      out.generate.push(t);
      live.push({ ...t });
    }
  }

  const alive = live.filter((s) => s.redemptionEnd > now);
  for (const s of alive) for (const t of [s.notBefore, s.issuanceEnd, s.redemptionEnd]) if (t > now) wake.push(t);
  if (wake.length) out.wakeAt = Math.min(...wake);
  out.nextRotation = nextRotationOf(alive, policy.credit.rotationPeriod, now);
  return out;
}

/**
 * Emergency rotation: keys of one purpose stop signing now; published successors that never
 * signed are withdrawn; with `revokeRedemption` the old keys stop verifying too (removed now).
 */
function stopSigning(mine: Slot[], now: number, forced: Forced, out: Plan): void {
  for (const s of mine) {
    if (s.keyId === undefined) continue;
    if (s.notBefore > now) withdraw(s, out);
    else if (forced.revokeRedemption) {
      out.revoke.push(s.keyId);
      s.issuanceEnd = now;
      s.redemptionEnd = now;
    } else if (s.issuanceEnd > now) {
      s.issuanceEnd = now;
      out.retire.push({ keyId: s.keyId, issuanceEnd: now });
    }
  }
}

function withdraw(s: Slot, out: Plan): void {
  out.withdraw.push(s.keyId!);
  // Marks the slot dead for the rest of the plan (filtered out by the callers' `live` views).
  s.redemptionEnd = s.issuanceEnd = s.notBefore = Number.NEGATIVE_INFINITY;
}

function nextRotationOf(live: Slot[], period: number, now: number): number | undefined {
  const credit = live.filter((s) => s.purpose === 'credit').sort((a, b) => a.notBefore - b.notBefore);
  const pending = credit.find((s) => s.notBefore > now);
  if (pending) return pending.notBefore;
  const latest = credit[credit.length - 1];
  return latest ? latest.notBefore + period : undefined;
}

/** Rolling schedule for one purpose; mutates `live` (adds the generated slots, shortens retired ones). */
function roll(purpose: KeyPurpose, p: RollingPolicy, live: Slot[], now: number, forced: Forced | undefined, out: Plan, wake: number[]): void {
  const mine = () => live.filter((s) => s.purpose === purpose && s.redemptionEnd > now).sort((a, b) => a.notBefore - b.notBefore);
  const add = (notBefore: number, reason: GenerateReason) => {
    const t: KeyTemplate = { purpose, notBefore, issuanceEnd: notBefore + p.issuanceWindow, redemptionEnd: notBefore + p.issuanceWindow + p.redemptionGrace, reason };
    out.generate.push(t);
    live.push({ ...t });
  };
  if (forced?.emergency) {
    stopSigning(mine(), now, forced, out);
    add(now, 'emergency');
  } else if (forced) {
    const nb = now + p.publishAhead;
    // A successor that has not signed yet is replaced, not joined: repeated requests do not pile up keys.
    for (const s of mine()) if (s.keyId !== undefined && s.notBefore > now) withdraw(s, out);
    const signers = mine().filter((s) => s.keyId !== undefined && s.notBefore <= now && now < s.issuanceEnd);
    for (const s of signers) {
      if (s.issuanceEnd > nb) {
        s.issuanceEnd = Math.max(nb, s.notBefore);
        out.retire.push({ keyId: s.keyId!, issuanceEnd: s.issuanceEnd });
      }
    }
    // No gap until the new key takes over: a key cut short for a withdrawn successor signs until then again.
    const last = signers.at(-1);
    if (last && !signers.some((s) => s.issuanceEnd >= nb)) {
      last.issuanceEnd = Math.min(nb, last.redemptionEnd);
      out.retire.push({ keyId: last.keyId!, issuanceEnd: last.issuanceEnd });
    }
    add(nb, 'forced');
  }
  let keys = mine();
  const signingNow = keys.some((s) => s.notBefore <= now && now < s.issuanceEnd);
  const startingSoon = keys.some((s) => s.notBefore > now && s.notBefore <= now + p.publishAhead);
  if (!signingNow && !startingSoon) {
    add(now, 'bootstrap');
    keys = mine();
  }
  const latest = keys[keys.length - 1]!;
  const publishAt = latest.notBefore + p.period - p.publishAhead;
  if (now >= publishAt) {
    // Normally exactly publishAhead before the period ends; later if the operator was down (never a gap while latest signs).
    const nb = Math.max(latest.notBefore + p.period, Math.min(now + p.publishAhead, latest.issuanceEnd));
    add(nb, 'scheduled');
    const successor = mine().at(-1)!;
    wake.push(successor.notBefore + p.period - p.publishAhead);
  } else {
    wake.push(publishAt);
  }
}

/** Truncated key ids (last byte) already taken by keys that are still published at `now`. */
export function takenTruncatedIds(keys: Iterable<KeyMetadata>, now: number): Set<number> {
  const taken = new Set<number>();
  for (const k of keys) if (now < Date.parse(k.redemptionEnd)) taken.add(parseInt(k.keyId.slice(-2), 16));
  return taken;
}

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
 * - Forced rotation (annotation): a new credit key with notBefore = now +
 *   publishAhead; older credit keys stop signing at that instant (their
 *   redemption windows are untouched, so no issued token is lost).
 * - Transient keys: one per calendar month (UTC), notBefore = first instant of
 *   the month, issuance ends at the month's end, redemption `grace` later; next
 *   month's key is generated `publishAhead` before the month starts.
 * - A key is removed only once its redemption window is over.
 * - Envelope files wrapped under another key-encryption key than the current
 *   one (Key Vault key got a new version, or protection changed) are re-wrapped.
 */
import { epochBounds, epochOf, type KekRef, type KeyMetadata, type KeyPurpose } from '@llmtor/protocol';
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
}

export type GenerateReason = 'bootstrap' | 'scheduled' | 'forced' | 'epoch';

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

/** Parses the rotate annotation: 'now', or an RFC 3339 time. */
export function parseRotateRequest(v: string): { kind: 'now' } | { kind: 'at'; at: number } | { kind: 'invalid' } {
  const t = v.trim();
  if (t.toLowerCase() === 'now') return { kind: 'now' };
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(t)) {
    const at = Date.parse(t);
    if (!Number.isNaN(at)) return { kind: 'at', at };
  }
  return { kind: 'invalid' };
}

export function plan(input: PlanInput): Plan {
  const { policy, now } = input;
  const out: Plan = { generate: [], retire: [], remove: [], rewrap: [] };
  const wake: number[] = [];
  const live: Slot[] = [];
  for (const k of input.keys) {
    const s = slotOf(k.meta);
    if (now >= s.redemptionEnd) out.remove.push(k.meta.keyId);
    else live.push(s);
  }
  if (policy.paused) {
    // Paused: nothing is generated, removed or re-wrapped; the status still shows the keys.
    out.remove = [];
    out.nextRotation = nextRotationOf(live, policy.credit.rotationPeriod, now);
    return out;
  }

  if (input.currentKek) {
    const cur = input.currentKek;
    for (const k of input.keys) if (k.kek !== null && now < Date.parse(k.meta.redemptionEnd) && !sameKek(k.kek, cur)) out.rewrap.push(k.meta.keyId);
  }

  // --- forced rotation request
  let forcedAt: number | undefined;
  if (input.rotateRequest !== undefined) {
    const r = parseRotateRequest(input.rotateRequest);
    if (r.kind === 'now') {
      out.rewriteRotateAnnotation = new Date(now).toISOString();
    } else if (r.kind === 'invalid') {
      out.invalidRotateRequest = `annotation ${JSON.stringify(input.rotateRequest)} is neither "now" nor an RFC 3339 time (e.g. 2026-12-01T00:00:00Z); it is ignored`;
    } else {
      const handled = input.handledRotation !== undefined ? Date.parse(input.handledRotation) : Number.NaN;
      const done = !Number.isNaN(handled) && handled >= r.at;
      if (!done && r.at <= now) {
        forcedAt = r.at;
        out.handledRotation = new Date(r.at).toISOString();
      } else if (!done) wake.push(r.at);
    }
  }

  const credit: RollingPolicy = {
    period: policy.credit.rotationPeriod,
    issuanceWindow: policy.credit.issuanceWindow,
    redemptionGrace: policy.credit.redemptionGrace,
    publishAhead: policy.credit.publishAhead,
  };
  roll('credit', credit, live, now, forcedAt !== undefined && out.rewriteRotateAnnotation === undefined, out, wake);
  if (policy.permanent.policy === 'Rolling') {
    const p = policy.permanent;
    roll('permanent', { period: p.lifetime, issuanceWindow: p.lifetime, redemptionGrace: p.redemptionGrace, publishAhead: policy.credit.publishAhead }, live, now, false, out, wake);
  }
  if (policy.transient.epoch === 'CalendarMonthUTC') {
    const current = epochOf(new Date(now));
    const next = epochOf(epochBounds(current).end);
    const wanted = [current];
    const nextStart = epochBounds(next).start.getTime();
    if (now >= nextStart - policy.credit.publishAhead) wanted.push(next);
    else wake.push(nextStart - policy.credit.publishAhead);
    for (const e of wanted) {
      if (live.some((s) => s.purpose === 'transient' && s.epoch === e)) continue;
      const { start, end } = epochBounds(e);
      const t: KeyTemplate = { purpose: 'transient', epoch: e, notBefore: start.getTime(), issuanceEnd: end.getTime(), redemptionEnd: end.getTime() + policy.transient.grace, reason: 'epoch' };
      out.generate.push(t);
      live.push({ ...t });
    }
  }

  for (const s of live) for (const t of [s.notBefore, s.issuanceEnd, s.redemptionEnd]) if (t > now) wake.push(t);
  if (wake.length) out.wakeAt = Math.min(...wake);
  out.nextRotation = nextRotationOf(live, policy.credit.rotationPeriod, now);
  return out;
}

function nextRotationOf(live: Slot[], period: number, now: number): number | undefined {
  const credit = live.filter((s) => s.purpose === 'credit').sort((a, b) => a.notBefore - b.notBefore);
  const pending = credit.find((s) => s.notBefore > now);
  if (pending) return pending.notBefore;
  const latest = credit[credit.length - 1];
  return latest ? latest.notBefore + period : undefined;
}

/** Rolling schedule for one purpose; mutates `live` (adds the generated slots, shortens retired ones). */
function roll(purpose: KeyPurpose, p: RollingPolicy, live: Slot[], now: number, forced: boolean, out: Plan, wake: number[]): void {
  const mine = () => live.filter((s) => s.purpose === purpose).sort((a, b) => a.notBefore - b.notBefore);
  const add = (notBefore: number, reason: GenerateReason) => {
    const t: KeyTemplate = { purpose, notBefore, issuanceEnd: notBefore + p.issuanceWindow, redemptionEnd: notBefore + p.issuanceWindow + p.redemptionGrace, reason };
    out.generate.push(t);
    live.push({ ...t });
  };
  if (forced) {
    const nb = now + p.publishAhead;
    for (const s of mine()) {
      if (s.issuanceEnd > nb && s.keyId !== undefined) {
        s.issuanceEnd = Math.max(nb, s.notBefore);
        out.retire.push({ keyId: s.keyId, issuanceEnd: s.issuanceEnd });
      }
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

/**
 * TokenIssuer status in the style of cert-manager: conditions with reasons a
 * person can act on, the live keys with their windows, and failure back-off.
 * Pure functions; the reconciler writes the result to the status subresource.
 */
import { epochOf, type KeyMetadata, type KeyPurpose } from '@llmtor/protocol';

export type ConditionType = 'Ready' | 'Rotating' | 'KeyVaultReachable';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type KeyState = 'Published' | 'Active' | 'RedeemOnly' | 'Expired';

export interface StatusKey {
  purpose: KeyPurpose;
  keyId: string;
  /** Last byte of the key id (what a TokenRequest carries); unique among published keys. */
  truncatedKeyId: number;
  epoch?: string;
  notBefore: string;
  issuanceEnd: string;
  redemptionEnd: string;
  state: KeyState;
}

export interface IssuerStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  keys?: StatusKey[];
  /** First 12 hex digits of the newest credit key that signs now (printer column). */
  currentCreditKey?: string;
  currentEpoch?: string;
  nextRotation?: string;
  lastRotationTime?: string;
  /** The key-encryption key new key files are wrapped with (`local:<secret>` or the Key Vault key URL). */
  keyEncryptionKey?: string;
  failedAttempts?: number;
  lastFailureTime?: string;
  lastFailureMessage?: string;
  nextRetryTime?: string;
}

export function shortKeyId(keyId: string): string {
  return keyId.slice(0, 12);
}

export function keyState(m: KeyMetadata, now: number): KeyState {
  if (now < Date.parse(m.notBefore)) return 'Published';
  if (now < Date.parse(m.issuanceEnd)) return 'Active';
  if (now < Date.parse(m.redemptionEnd)) return 'RedeemOnly';
  return 'Expired';
}

const PURPOSE_ORDER: Record<KeyPurpose, number> = { credit: 0, permanent: 1, transient: 2 };

function statusKey(m: KeyMetadata, state: KeyState): StatusKey {
  const k: StatusKey = {
    purpose: m.purpose,
    keyId: m.keyId,
    truncatedKeyId: parseInt(m.keyId.slice(-2), 16),
    notBefore: m.notBefore,
    issuanceEnd: m.issuanceEnd,
    redemptionEnd: m.redemptionEnd,
    state,
  };
  if (m.epoch !== undefined) k.epoch = m.epoch;
  return k;
}

/**
 * Keys for the status: the live ones from the Secret, then up to `historyLimit`
 * removed ones (kept from the previous status, newest first) as `Expired`.
 */
export function statusKeys(live: readonly KeyMetadata[], previous: readonly StatusKey[] | undefined, removed: readonly KeyMetadata[], historyLimit: number, now: number): StatusKey[] {
  const liveIds = new Set(live.map((m) => m.keyId));
  const current = live
    .map((m) => statusKey(m, keyState(m, now)))
    .sort((a, b) => PURPOSE_ORDER[a.purpose] - PURPOSE_ORDER[b.purpose] || Date.parse(b.notBefore) - Date.parse(a.notBefore));
  const history = new Map<string, StatusKey>();
  for (const m of removed) history.set(m.keyId, statusKey(m, 'Expired'));
  for (const k of previous ?? []) if (!liveIds.has(k.keyId) && !history.has(k.keyId) && (k.state === 'Expired' || now >= Date.parse(k.redemptionEnd))) history.set(k.keyId, { ...k, state: 'Expired' });
  const expired = [...history.values()].sort((a, b) => Date.parse(b.redemptionEnd) - Date.parse(a.redemptionEnd)).slice(0, historyLimit);
  return [...current, ...expired];
}

/** Newest credit key that signs now. */
export function currentCreditKey(live: readonly KeyMetadata[], now: number): KeyMetadata | undefined {
  let best: KeyMetadata | undefined;
  for (const m of live) if (m.purpose === 'credit' && keyState(m, now) === 'Active' && (!best || Date.parse(m.notBefore) > Date.parse(best.notBefore))) best = m;
  return best;
}

export function currentEpoch(now: number): string {
  return epochOf(new Date(now));
}

/** Replaces the condition of the same type; keeps lastTransitionTime when the status did not change. */
export function setCondition(conditions: readonly Condition[] | undefined, c: Omit<Condition, 'lastTransitionTime'>, now: number): Condition[] {
  const prev = (conditions ?? []).find((x) => x.type === c.type);
  const lastTransitionTime = prev && prev.status === c.status ? prev.lastTransitionTime : isoSeconds(now);
  const next: Condition = { ...c, lastTransitionTime };
  const order: ConditionType[] = ['Ready', 'Rotating', 'KeyVaultReachable'];
  return [...(conditions ?? []).filter((x) => x.type !== c.type), next].sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
}

export function getCondition(status: IssuerStatus | undefined, type: ConditionType): Condition | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** RFC 3339 without milliseconds, as Kubernetes writes times. */
export function isoSeconds(t: number): string {
  return new Date(Math.floor(t / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Exponential back-off after `failedAttempts` consecutive failures: base, 2·base, 4·base … capped. */
export function backoffMs(failedAttempts: number, baseMs: number, maxMs: number): number {
  if (failedAttempts <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(failedAttempts - 1, 30));
}

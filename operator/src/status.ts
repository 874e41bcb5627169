/**
 * TokenIssuer status in the style of cert-manager: conditions with reasons a
 * person can act on, the live keys with their windows, and failure back-off.
 * Pure functions; the reconciler writes the result to the status subresource.
 */
import { epochOf, type KeyMetadata, type KeyPurpose } from '@llmtor/protocol';
import { formatDuration } from './duration.js';
import type { KekFailureReason } from './kek.js';
import type { Plan } from './schedule.js';
import type { IssuerPolicy } from './spec.js';

export type ConditionType = 'Ready' | 'Rotating' | 'KeyVaultReachable';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

/**
 * Every reason a condition (and the failure it reports) can carry: a closed set,
 * so a dashboard or an alert can match on them. Event-only reasons stay where
 * the events are written.
 */
export const Reason = {
  // Ready
  KeysCurrent: 'KeysCurrent',
  NoActiveCreditKey: 'NoActiveCreditKey',
  NoEpochKey: 'NoEpochKey',
  InvalidSpec: 'InvalidSpec',
  // Rotating
  Paused: 'Paused',
  RotationRefused: 'RotationRefused',
  RotationBlocked: 'RotationBlocked',
  InvalidRotationRequest: 'InvalidRotationRequest',
  SuccessorPublished: 'SuccessorPublished',
  Idle: 'Idle',
  // KeyVaultReachable
  Reachable: 'Reachable',
  KeyVaultUnreachable: 'KeyVaultUnreachable',
  KeyVaultForbidden: 'KeyVaultForbidden',
  KeyVaultKeyNotFound: 'KeyVaultKeyNotFound',
  KeyVaultError: 'KeyVaultError',
  CredentialUnavailable: 'CredentialUnavailable',
  // failures of a reconcile (lastFailureMessage, Ready's message)
  KeyEncryptionKeyLost: 'KeyEncryptionKeyLost',
  KeyEncryptionKeyUnavailable: 'KeyEncryptionKeyUnavailable',
  LocalKeyEncryptionKeyInvalid: 'LocalKeyEncryptionKeyInvalid',
  ReconcileFailed: 'ReconcileFailed',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];
export type FailureReason = KekFailureReason | typeof Reason.KeyEncryptionKeyLost | typeof Reason.KeyEncryptionKeyUnavailable | typeof Reason.LocalKeyEncryptionKeyInvalid | typeof Reason.ReconcileFailed;

const KEY_VAULT_REASONS: ReadonlySet<string> = new Set<KekFailureReason>([Reason.KeyVaultUnreachable, Reason.KeyVaultForbidden, Reason.KeyVaultKeyNotFound, Reason.KeyVaultError, Reason.CredentialUnavailable]);

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: Reason;
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

/** What the conditions are computed from: one reconcile's outcome, no I/O. */
export interface ConditionInput {
  issuerName: string;
  policy: Pick<IssuerPolicy, 'paused' | 'protection' | 'credit' | 'transient'>;
  /** Key files after the plan was carried out (or as found, when it could not be). */
  live: readonly KeyMetadata[];
  plan: Pick<Plan, 'nextRotation' | 'pausedRotateRequest' | 'refusedRotateRequest' | 'invalidRotateRequest' | 'generate'>;
  now: number;
  /** Description of the key-encryption key this reconcile wrapped with, when it resolved one. */
  kekDescription?: string | undefined;
  /** Non-fatal problems (unreadable Secret entries, failed re-wraps), appended to Ready's message. */
  problems: readonly string[];
  failure?: { reason: FailureReason; message: string } | undefined;
}

/** A condition without its bookkeeping (transition time, generation). */
export type ConditionVerdict = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

/** One named rule: a verdict when it applies, undefined to pass on to the next. */
export interface Check {
  name: string;
  evaluate(input: ConditionInput): ConditionVerdict | undefined;
}

/** The first check that applies decides; the order of a chain is its precedence. */
export function evaluateChain(chain: readonly Check[], input: ConditionInput): ConditionVerdict | undefined {
  for (const check of chain) {
    const verdict = check.evaluate(input);
    if (verdict) return verdict;
  }
  return undefined;
}

function signingKeys(input: ConditionInput): { current: KeyMetadata | undefined; epoch: string; needsEpoch: boolean; epochKey: KeyMetadata | undefined } {
  const { live, now } = input;
  const epoch = currentEpoch(now);
  return {
    current: currentCreditKey(live, now),
    epoch,
    needsEpoch: input.policy.transient.epoch === 'CalendarMonthUTC',
    epochKey: live.find((m) => m.purpose === 'transient' && m.epoch === epoch && keyState(m, now) === 'Active'),
  };
}

function problemsNote(input: ConditionInput): string {
  return input.problems.length ? ` Problems: ${input.problems.join('; ')}.` : '';
}

/** Only from keys that exist: a plan that could not be carried out (no KEK) has no rotation to announce. */
export function nextRotationOf(input: Pick<ConditionInput, 'plan' | 'live'>): string | undefined {
  return input.plan.nextRotation !== undefined && input.live.some((m) => m.purpose === 'credit') ? isoSeconds(input.plan.nextRotation) : undefined;
}

export const READY_CHECKS: readonly Check[] = [
  {
    // The keys are listed but no pod can open them: not ready, whatever the schedule says.
    name: 'kek-lost',
    evaluate: (input) => (input.failure?.reason === Reason.KeyEncryptionKeyLost ? { type: 'Ready', status: 'False', reason: Reason.KeyEncryptionKeyLost, message: input.failure.message } : undefined),
  },
  {
    name: 'keys-current',
    evaluate: (input) => {
      const { current, epoch, needsEpoch, epochKey } = signingKeys(input);
      if (!current || (needsEpoch && !epochKey)) return undefined;
      return { type: 'Ready', status: 'True', reason: Reason.KeysCurrent, message: `credit key ${shortKeyId(current.keyId)} signs until ${current.issuanceEnd}${needsEpoch ? `; epoch ${epoch} key ${shortKeyId(epochKey!.keyId)}` : ''}; ${input.live.length} keys published.${problemsNote(input)}` };
    },
  },
  {
    name: 'keys-missing',
    evaluate: (input) => {
      const { current, epoch } = signingKeys(input);
      const why = input.failure ? ` Last failure (${input.failure.reason}): ${input.failure.message}` : input.policy.paused ? ' Rotation is paused (spec.paused); set it to false.' : '';
      return { type: 'Ready', status: 'False', reason: current ? Reason.NoEpochKey : Reason.NoActiveCreditKey, message: `${current ? `no transient key signs for epoch ${epoch}` : 'no credit key can sign now'}.${why}${problemsNote(input)}` };
    },
  },
];

export const ROTATING_CHECKS: readonly Check[] = [
  {
    name: 'paused-request',
    evaluate: ({ policy, plan }) => (policy.paused && plan.pausedRotateRequest ? { type: 'Rotating', status: 'False', reason: Reason.Paused, message: plan.pausedRotateRequest } : undefined),
  },
  {
    name: 'paused',
    evaluate: ({ policy, issuerName }) =>
      policy.paused ? { type: 'Rotating', status: 'False', reason: Reason.Paused, message: 'spec.paused is true: no key is generated, re-wrapped or removed. Resume with: kubectl patch tokenissuer ' + issuerName + ' --type merge -p \'{"spec":{"paused":false}}\'' } : undefined,
  },
  {
    name: 'refused',
    evaluate: ({ plan }) => (plan.refusedRotateRequest ? { type: 'Rotating', status: 'False', reason: Reason.RotationRefused, message: plan.refusedRotateRequest } : undefined),
  },
  {
    name: 'blocked',
    evaluate: ({ plan, failure }) => (failure && plan.generate.length ? { type: 'Rotating', status: 'False', reason: Reason.RotationBlocked, message: `${plan.generate.length} key(s) due but not generated: ${failure.message}` } : undefined),
  },
  {
    name: 'invalid-request',
    evaluate: ({ plan }) => (plan.invalidRotateRequest ? { type: 'Rotating', status: 'False', reason: Reason.InvalidRotationRequest, message: plan.invalidRotateRequest } : undefined),
  },
  {
    name: 'successor-published',
    evaluate: ({ live, now }) => {
      const pending = live.filter((m) => m.purpose === 'credit' && keyState(m, now) === 'Published').sort((a, b) => Date.parse(a.notBefore) - Date.parse(b.notBefore))[0];
      return pending ? { type: 'Rotating', status: 'True', reason: Reason.SuccessorPublished, message: `credit key ${shortKeyId(pending.keyId)} is published and takes over at ${pending.notBefore}` } : undefined;
    },
  },
  {
    name: 'idle',
    evaluate: (input) => {
      const next = nextRotationOf(input);
      return { type: 'Rotating', status: 'False', reason: Reason.Idle, message: next ? `next credit key takes over at ${next}; it is published ${formatDuration(input.policy.credit.publishAhead)} before` : 'no rotation scheduled' };
    },
  },
];

/** Only for issuers protected by Key Vault; neither verdict when the vault was not asked (paused). */
export const KEY_VAULT_CHECKS: readonly Check[] = [
  {
    name: 'vault-failed',
    evaluate: ({ failure }) => (failure && KEY_VAULT_REASONS.has(failure.reason) ? { type: 'KeyVaultReachable', status: 'False', reason: failure.reason, message: failure.message } : undefined),
  },
  {
    name: 'vault-wrapped',
    evaluate: ({ kekDescription }) => (kekDescription !== undefined ? { type: 'KeyVaultReachable', status: 'True', reason: Reason.Reachable, message: `wrapping data keys with ${kekDescription}` } : undefined),
  },
];

export function readyCondition(input: ConditionInput): ConditionVerdict {
  return evaluateChain(READY_CHECKS, input)!;
}

export function rotatingCondition(input: ConditionInput): ConditionVerdict {
  return evaluateChain(ROTATING_CHECKS, input)!;
}

export function keyVaultCondition(input: ConditionInput): ConditionVerdict | undefined {
  return input.policy.protection.type === 'azureKeyVault' ? evaluateChain(KEY_VAULT_CHECKS, input) : undefined;
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

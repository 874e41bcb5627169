/**
 * Storage of the issuance side (accounts, ledger, purchases, issuance records,
 * rate-limit counters) behind one interface with two implementations: Redis
 * (production; every multi-step update is one Lua script) and in-process (the
 * embedded demo default). Every method that changes a balance also appends the
 * journal entry in the same atomic step.
 */
import type { KeyPurpose } from '@llmtor/protocol';
import type { JournalEntry } from '../ledger/journal.js';

export interface PurchaseRecord {
  sessionId: string;
  packId: string;
  credits: number;
  amount: number;
  currency: string;
  createdAt: number;
  status: 'pending' | 'paid';
  paidAt?: number;
  paymentIntent?: string;
  /** Credits owed back because of refunds (cumulative) and disputes. */
  refundTarget?: number;
  disputeTarget?: number;
  /** Credits of this purchase already reversed (claimed), and of those, actually debited (the rest was spent). */
  reversed?: number;
  reversedDebited?: number;
}

export interface AccountSnapshot {
  accountId: string;
  createdAt: number;
  balance: number;
  permanentIssued: number;
  transientIssued: Record<string, number>;
  purchases: PurchaseRecord[];
}

export interface IssuanceReservationRequest {
  requestId: string;
  /** SHA-256 of media type and body: a reused request id with another body is a conflict. */
  bodyHash: string;
  purpose: KeyPurpose;
  /** Transient epoch ("YYYY-MM"); "" for other purposes. */
  epoch: string;
  count: number;
  /** Abuse tokens: most tokens of this purpose (per epoch for transient) an account may get. */
  quotaLimit: number;
  /**
   * Abuse tokens only: what the account must have done first, so that a fresh pseudonym costs
   * something. `purchase` = a paid purchase not fully refunded/disputed; `purchase_or_grant` =
   * that or an admin grant; `none` = nothing. Ignored for credit tokens (they cost a credit each).
   */
  abuseRequires: AbuseTokenRequirement;
  now: number;
  ttlMs: number;
  takeoverMs: number;
}

export type AbuseTokenRequirement = 'purchase' | 'purchase_or_grant' | 'none';

export type Reservation =
  | { kind: 'reserved'; balance: number }
  /** The same request was reserved by a pod that never finished: sign again, no second debit. */
  | { kind: 'takeover' }
  | { kind: 'replay'; response: Uint8Array }
  | { kind: 'conflict' }
  | { kind: 'in_progress' }
  | { kind: 'insufficient'; balance: number }
  | { kind: 'quota'; used: number; limit: number }
  /** Abuse tokens for an account that has not paid (see `abuseRequires`). */
  | { kind: 'unpaid' };

export type PaymentOutcome =
  | { outcome: 'credited'; credits: number; balance: number }
  | { outcome: 'duplicate_event' | 'already_paid' | 'unknown_session' };

export type ReversalOutcome = { outcome: 'reversed'; owed: number; debited: number; balance: number } | { outcome: 'duplicate_event' | 'nothing_owed' | 'not_paid' | 'unknown_session' };

/** What completing a reservation found: `aborted` = no longer reserved (swept after its pod was presumed dead, or expired): do not hand the answer out. */
export type CompletionOutcome = 'ok' | 'already' | 'aborted';

/** A reservation the sweeper gave back. */
export interface SweptReservation {
  accountId: string;
  requestId: string;
  purpose: KeyPurpose;
  count: number;
}

export interface RateDecision {
  allowed: boolean;
  retryAfterMs: number;
}

export interface IssuanceStore {
  readonly kind: 'redis' | 'memory';
  ping(): Promise<boolean>;
  close(): Promise<void>;

  /** false if the key hash is already taken (never in practice: 133-bit keys). */
  createAccount(keyHash: string, accountId: string, now: number): Promise<boolean>;
  accountIdForKeyHash(keyHash: string): Promise<string | undefined>;
  snapshot(accountId: string): Promise<AccountSnapshot>;
  balance(accountId: string): Promise<number>;
  journal(accountId: string): Promise<JournalEntry[]>;

  grant(accountId: string, credits: number, grantId: string, note: string, now: number): Promise<{ balance: number }>;

  recordCheckout(accountId: string, purchase: PurchaseRecord): Promise<void>;
  /**
   * Credits a paid Checkout Session exactly once (dedup on event id and session
   * status, same atomic step). The payment intent is indexed (for refunds and
   * disputes) before the credit, on every delivery: whenever the credit can be
   * seen, so can the index, even if this process dies right after the credit.
   */
  applyPayment(accountId: string, p: { sessionId: string; eventId: string; paymentIntent: string; now: number; eventTtlMs: number }): Promise<PaymentOutcome>;
  /**
   * Refund/dispute: debits what is owed and unspent, never below 0; journaled even when nothing was left.
   * `not_paid` (the payment is not credited yet) does not consume the event, so a redelivery applies it.
   */
  applyReversal(
    accountId: string,
    r: { sessionId: string; eventId: string; kind: 'refund' | 'dispute'; targetCredits: number; now: number; eventTtlMs: number },
  ): Promise<ReversalOutcome>;
  lookupPaymentIntent(paymentIntent: string): Promise<{ accountId: string; sessionId: string } | undefined>;

  reserveIssuance(accountId: string, r: IssuanceReservationRequest): Promise<Reservation>;
  /** Stores the response for retries and gives back `failed` credits/quota (signing failures). */
  completeIssuance(accountId: string, c: { requestId: string; response: Uint8Array; failed: number; now: number; ttlMs: number }): Promise<CompletionOutcome>;
  /** Nothing was signed: gives back everything the reservation took and forgets the request. */
  abortIssuance(accountId: string, a: { requestId: string; now: number }): Promise<void>;
  /**
   * Gives back reservations still pending `abandonedMs` after their last attempt
   * (the pod died before answering and no retry came), at most `limit`. Each
   * refund is one atomic step that also marks the request aborted, so pods may
   * sweep at the same time; a later retry of the request reserves afresh.
   */
  sweepAbandoned(s: { now: number; abandonedMs: number; limit: number }): Promise<SweptReservation[]>;

  /** Fixed-window counter. `cost` 0 only checks. */
  rateLimit(name: string, limit: number, windowMs: number, now: number, cost: number): Promise<RateDecision>;
}

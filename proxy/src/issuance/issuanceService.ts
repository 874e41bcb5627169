/**
 * Issuance: debit (or take abuse-token quota), blind-sign on the worker pool,
 * store the response for retries, answer. The reservation (debit + record of
 * the request) is one atomic store step; signing failures give their credits
 * back in the step that stores the response (or in an abort when nothing was
 * signed). A retry with the same Idempotency-Key gets the stored bytes. A
 * reservation whose pod died before answering is given back by the sweeper
 * (reservationSweeper.ts); if that pod was only slow, its answer is withheld.
 */
import { encodeBatchTokenResponse, encodeTokenResponse, ProtocolError, type Keyring, type TokenResponse } from '@llmtor/protocol';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { ApiError } from '../http/apiError.js';
import type { AbuseTokenRequirement, IssuanceStore } from '../store/issuanceStore.js';
import { checkBlindedMessages, issuanceBodyHash, parseIssuanceBody, responseMediaType, selectIssuingKey, type IssuanceShape } from './parseIssuanceRequest.js';
import type { BatchSigner } from './signer.js';

export interface IssuanceSettings {
  maxBatchSize: number;
  transientReissuesPerEpoch: number;
  /** What an account must have done before it gets abuse tokens (see IssuanceReservationRequest). */
  abuseRequires: AbuseTokenRequirement;
  idempotencyTtlMs: number;
  pendingTakeoverMs: number;
  /** How long after a key's issuance end it still signs (requests in flight at a rotation, client clock skew). */
  keyGraceMs: number;
}

export interface IssuanceDeps {
  store: IssuanceStore;
  signer: BatchSigner;
  keyring: () => Keyring;
  now: () => number;
  logger: Logger;
  settings: IssuanceSettings;
  tokensIssued: Counter<'purpose'>;
  signingFailures: Counter<'purpose'>;
}

export interface IssuanceResult {
  contentType: string;
  body: Uint8Array;
  replayed: boolean;
}

export async function issueTokens(d: IssuanceDeps, accountId: string, shape: IssuanceShape, body: Uint8Array, requestId: string): Promise<IssuanceResult> {
  const now = d.now();
  const parsed = parseIssuanceBody(shape, body, d.settings.maxBatchSize);
  const key = selectIssuingKey(d.keyring(), parsed.truncatedId, now, d.settings.keyGraceMs);
  checkBlindedMessages(key, parsed.requests);
  const purpose = key.meta.purpose;
  const count = parsed.requests.length;
  const quotaLimit = purpose === 'permanent' ? 1 : purpose === 'transient' ? 1 + d.settings.transientReissuesPerEpoch : 0;

  const r = await d.store.reserveIssuance(accountId, {
    requestId,
    bodyHash: issuanceBodyHash(shape, body),
    purpose,
    epoch: key.meta.epoch ?? '',
    count,
    quotaLimit,
    abuseRequires: d.settings.abuseRequires,
    now,
    ttlMs: d.settings.idempotencyTtlMs,
    takeoverMs: d.settings.pendingTakeoverMs,
  });
  switch (r.kind) {
    case 'replay':
      return { contentType: responseMediaType(shape), body: r.response, replayed: true };
    case 'conflict':
      throw new ApiError('idempotency_key_reused', 'this Idempotency-Key was used for a different request; use a fresh key for a new request');
    case 'in_progress':
      throw new ApiError('request_in_progress', 'a request with this Idempotency-Key is still being processed; retry shortly', { headers: { 'Retry-After': '1' } });
    case 'insufficient':
      throw new ApiError('insufficient_credits', `this request needs ${count} credits, the balance is ${r.balance}`, { details: { balance: r.balance, needed: count } });
    case 'quota':
      throw new ApiError('abuse_token_quota_exhausted', purpose === 'permanent' ? 'the permanent abuse token of this account was already issued' : `the transient abuse tokens of epoch ${key.meta.epoch} are used up (${r.used} of ${r.limit})`, {
        details: { purpose, used: r.used, limit: r.limit, ...(key.meta.epoch ? { epoch: key.meta.epoch } : {}) },
      });
    case 'unpaid':
      throw new ApiError(
        'purchase_required',
        `${purpose} abuse tokens are issued only to accounts with a paid purchase${d.settings.abuseRequires === 'purchase_or_grant' ? ' or an admin grant' : ''}, so that a new pseudonym costs a purchase; buy a credit pack (POST /v1/purchases), then retry this request once the payment is credited`,
        { details: { purpose } },
      );
    case 'reserved':
    case 'takeover':
      break;
  }

  let results: (Uint8Array | ProtocolError)[];
  try {
    results = await d.signer.signBatch(key.meta.keyId, parsed.requests.map((x) => x.blindedMsg));
  } catch (e) {
    results = parsed.requests.map(() => (e instanceof ProtocolError ? e : new ProtocolError('signing_failure', 'signer unavailable')));
  }
  const failed = results.filter((x) => !(x instanceof Uint8Array)).length;
  if (failed > 0) {
    d.signingFailures.inc({ purpose }, failed);
    d.logger.error({ failed, count, purpose, reason: (results.find((x) => x instanceof ProtocolError) as ProtocolError).code }, 'blind signing failed; credits given back');
  }
  if (failed === count) {
    await d.store.abortIssuance(accountId, { requestId, now: d.now() });
    throw new ApiError('signing_failed', 'the token could not be signed; nothing was debited, retry shortly', { headers: { 'Retry-After': '1' } });
  }
  const responses: (TokenResponse | null)[] = results.map((x) => (x instanceof Uint8Array ? { blindSig: x } : null));
  const out = shape === 'single' ? encodeTokenResponse(responses[0]!) : encodeBatchTokenResponse(responses);
  const done = await d.store.completeIssuance(accountId, { requestId, response: out, failed, now: d.now(), ttlMs: d.settings.idempotencyTtlMs });
  if (done === 'aborted') {
    // This pod took so long that the sweeper presumed it dead and gave the debit back: the signatures must not go out unpaid.
    d.logger.warn({ purpose, count }, 'issuance finished after its reservation was given back; answer withheld');
    throw new ApiError('request_expired', 'the request took too long and was cancelled; nothing was debited; retry with the same Idempotency-Key', { headers: { 'Retry-After': '1' } });
  }
  d.tokensIssued.inc({ purpose }, count - failed);
  return { contentType: responseMediaType(shape), body: out, replayed: false };
}

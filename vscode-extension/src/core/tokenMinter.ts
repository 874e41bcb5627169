/**
 * Getting tokens: take THE current key for the purpose from the last directory pinned over
 * Tor (keyConsistency.ts; the issuance side is never asked which key to use), blind for the
 * client's own pinned TokenChallenge, send one generic batch request (authenticated with the
 * account key, idempotent), finalize, and put the tokens into the wallet.
 *
 * The blinded state is saved in the wallet before the request leaves, so a lost answer or
 * a crash is recovered by sending the same bytes with the same Idempotency-Key (the issuer
 * answers with the same signatures and does not charge again).
 */
import { randomUUID } from 'node:crypto';
import { BatchSizeMismatchError, fromBase64Url, toBase64Url, type KeyPurpose } from '@llmtor/protocol';
// Native RSA public operations and BigInt, batches in a worker thread (not blindrsa-ts: ~100x slower, on this event loop).
import { NativeTokenClient as TokenClient } from '@llmtor/protocol';
import type { IssuanceApi } from './issuanceApi.js';
import { issuingKeyFromPins, KeyConsistencyError, type PinDoc } from './keyConsistency.js';
import type { PendingBatch, Wallet } from './wallet.js';

export class NoIssuingKeyError extends Error {
  constructor(readonly purpose: KeyPurpose) {
    super(`the issuer publishes no ${purpose} key that is issuing now`);
    this.name = 'NoIssuingKeyError';
  }
}

export interface TokenMinterDeps {
  issuance: IssuanceApi;
  wallet: Wallet;
  accountKey: () => Promise<string>;
  /** The digest of the client's own pinned TokenChallenge (never one the server offered). */
  challengeDigest: () => Promise<Uint8Array>;
  /** The pins, with the last directory fetched anonymously over Tor. */
  pins: () => Promise<PinDoc>;
  now?: () => number;
  /** How old the pinned directory may be when tokens are issued under its keys. */
  maxDirectoryAgeMs?: number;
}

export interface IssueResult {
  issued: number;
  refused: number;
}

/** Default for TokenMinterDeps.maxDirectoryAgeMs. */
export const MAX_DIRECTORY_AGE_MS = 36 * 3_600_000;

/**
 * Mints tokens for the wallet from the issuer (the `TokenIssuer` resource the operator
 * manages is the server side; this is the client's side of issuance).
 */
export class TokenMinter {
  private readonly now: () => number;

  constructor(private readonly deps: TokenMinterDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Issues `count` tokens of `purpose` (abuse tokens: count 1) under the pinned current key. */
  async issue(purpose: KeyPurpose, count: number): Promise<IssueResult> {
    let picked;
    try {
      picked = issuingKeyFromPins(await this.deps.pins(), purpose, this.now(), this.deps.maxDirectoryAgeMs ?? MAX_DIRECTORY_AGE_MS);
    } catch (e) {
      if (e instanceof KeyConsistencyError && /no .* key that is issuing/.test(e.message)) throw new NoIssuingKeyError(purpose);
      throw e;
    }
    const { key, directory: dir } = picked;
    const client = await TokenClient.forKey(key.tokenKey);
    const digest = await this.deps.challengeDigest();
    const made = await client.createBatch(digest, count);
    const batch: PendingBatch = {
      idempotencyKey: `llmtor-${randomUUID()}`,
      purpose,
      tokenKey: key.tokenKey,
      request: toBase64Url(made.body),
      pending: made.pending,
      createdAt: this.now(),
    };
    if (key.epoch !== undefined) batch.epoch = key.epoch;
    if (key.redemptionNotAfterSec !== undefined) batch.redemptionNotAfterSec = key.redemptionNotAfterSec;
    await this.deps.wallet.addPendingBatch(batch);
    return this.complete(batch, dir['issuer-request-uri']);
  }

  /** Resends batches whose answers were lost (same bytes, same Idempotency-Key). */
  async resumePending(): Promise<IssueResult> {
    const total: IssueResult = { issued: 0, refused: 0 };
    const pending = await this.deps.wallet.pendingBatches();
    if (pending.length === 0) return total;
    const dir = (await this.deps.pins()).directory?.doc;
    if (!dir) return total;
    for (const b of pending) {
      // Idempotency records expire at the issuer (a day by default); older batches are dropped.
      if (this.now() - b.createdAt > 20 * 3_600_000) {
        await this.deps.wallet.removePendingBatch(b.idempotencyKey);
        continue;
      }
      const r = await this.complete(b, dir['issuer-request-uri']);
      total.issued += r.issued;
      total.refused += r.refused;
    }
    return total;
  }

  private async complete(batch: PendingBatch, issuerRequestUri: string): Promise<IssueResult> {
    let answer: Uint8Array;
    try {
      answer = await this.deps.issuance.issue(issuerRequestUri, await this.deps.accountKey(), fromBase64Url(batch.request, 'batch'), batch.idempotencyKey);
    } catch (e) {
      // A refusal the server states (no credit, quota) will not change on retry: forget the batch.
      const status = (e as { status?: number }).status;
      if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 409 && status !== 429) await this.deps.wallet.removePendingBatch(batch.idempotencyKey);
      throw e;
    }
    const client = await TokenClient.forKey(batch.tokenKey);
    let finalized: (Uint8Array | null)[];
    try {
      // finalizeBatch verifies each signature under the key we checked: a token that does not
      // verify (a signer fault, a different key) throws instead of entering the wallet.
      finalized = await client.finalizeBatch(batch.pending, answer);
    } catch (e) {
      if (e instanceof BatchSizeMismatchError) await this.deps.wallet.removePendingBatch(batch.idempotencyKey);
      throw e;
    }
    const tokens = finalized.flatMap((t) => (t ? [toBase64Url(t)] : []));
    const refused = finalized.length - tokens.length;
    if (batch.purpose === 'credit') {
      const credits = { tokens, tokenKey: batch.tokenKey, ...(batch.redemptionNotAfterSec !== undefined ? { redemptionNotAfterSec: batch.redemptionNotAfterSec } : {}) };
      await this.deps.wallet.completeBatch(batch.idempotencyKey, { credits });
    } else {
      const abuse = tokens[0]
        ? {
            token: tokens[0],
            tokenKey: batch.tokenKey,
            purpose: batch.purpose,
            issuedAt: this.now(),
            ...(batch.epoch !== undefined ? { epoch: batch.epoch } : {}),
            ...(batch.redemptionNotAfterSec !== undefined ? { redemptionNotAfterSec: batch.redemptionNotAfterSec } : {}),
          }
        : undefined;
      await this.deps.wallet.completeBatch(batch.idempotencyKey, abuse ? { abuse } : {});
    }
    return { issued: tokens.length, refused };
  }
}

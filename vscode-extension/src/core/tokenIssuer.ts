/**
 * Getting tokens: pick the issuing key from the issuer's directory, check it against the
 * directory everyone sees over Tor, blind, send one generic batch request (authenticated
 * with the account key, idempotent), finalize, and put the tokens into the wallet.
 *
 * The blinded state is saved in the wallet before the request leaves, so a lost answer or
 * a crash is recovered by sending the same bytes with the same Idempotency-Key (the issuer
 * answers with the same signatures and does not charge again).
 */
import { randomUUID } from 'node:crypto';
import { decodeBatchTokenResponse, encodeBatchTokenRequest, fromBase64Url, parseIssuerDirectory, toBase64Url, type IssuerDirectory, type KeyPurpose } from '@llmtor/protocol';
// Native RSA public operations and BigInt, batches in a worker thread (not blindrsa-ts: ~100x slower, on this event loop).
import { NativeTokenClient as TokenClient } from '@llmtor/protocol';
import { pickIssuingKey, type KeyWindow } from './epoch.js';
import type { IdentityApi } from './identityApi.js';
import { checkKeyConsistency } from './keyConsistency.js';
import type { RedemptionApi } from './redemptionApi.js';
import type { PendingBatch, Wallet } from './wallet.js';

export class NoIssuingKeyError extends Error {
  constructor(readonly purpose: KeyPurpose) {
    super(`the issuer publishes no ${purpose} key that is issuing now`);
    this.name = 'NoIssuingKeyError';
  }
}

export interface TokenIssuerDeps {
  identity: IdentityApi;
  redemption: RedemptionApi;
  wallet: Wallet;
  accountKey: () => Promise<string>;
  /** The challenge digest every token is made for (SHA-256 of the issuer's TokenChallenge). */
  challengeDigest: () => Promise<Uint8Array>;
  now?: () => number;
  /** How long a key verified over Tor stays trusted without a new check. */
  consistencyTtlMs?: number;
}

export interface IssueResult {
  issued: number;
  refused: number;
}

export class TokenIssuer {
  /** tokenKey → when it was last confirmed over Tor. */
  private readonly verified = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly d: TokenIssuerDeps) {
    this.now = d.now ?? Date.now;
  }

  async issuerDirectory(): Promise<IssuerDirectory> {
    return parseIssuerDirectory(await this.d.identity.directory());
  }

  /** Throws unless the key is in the directory fetched over a fresh Tor circuit. */
  async verifyKey(key: KeyWindow): Promise<void> {
    const seen = this.verified.get(key.tokenKey);
    if (seen !== undefined && this.now() - seen < (this.d.consistencyTtlMs ?? 10 * 60_000)) return;
    const publicDir = parseIssuerDirectory(await this.d.redemption.directory());
    checkKeyConsistency(key, publicDir);
    this.verified.set(key.tokenKey, this.now());
  }

  /** Issues `count` tokens of `purpose` (abuse tokens: count 1). */
  async issue(purpose: KeyPurpose, count: number, directory?: IssuerDirectory): Promise<IssueResult> {
    const dir = directory ?? (await this.issuerDirectory());
    const key = pickIssuingKey(dir, purpose, this.now());
    if (!key) throw new NoIssuingKeyError(purpose);
    await this.verifyKey(key);
    const client = await TokenClient.forKey(key.tokenKey);
    const digest = await this.d.challengeDigest();
    const made = await client.createRequests(digest, count);
    const batch: PendingBatch = {
      idempotencyKey: `llmtor-${randomUUID()}`,
      purpose,
      tokenKey: key.tokenKey,
      request: toBase64Url(encodeBatchTokenRequest(made.map((m) => m.request))),
      pending: made.map((m) => m.pending),
      createdAt: this.now(),
    };
    if (key.epoch !== undefined) batch.epoch = key.epoch;
    if (key.redemptionNotAfterSec !== undefined) batch.redemptionNotAfterSec = key.redemptionNotAfterSec;
    await this.d.wallet.addPendingBatch(batch);
    return this.complete(batch, dir['issuer-request-uri']);
  }

  /** Resends batches whose answers were lost (same bytes, same Idempotency-Key). */
  async resumePending(): Promise<IssueResult> {
    const total: IssueResult = { issued: 0, refused: 0 };
    const pending = await this.d.wallet.pendingBatches();
    if (pending.length === 0) return total;
    const dir = await this.issuerDirectory();
    for (const b of pending) {
      // Idempotency records expire at the issuer (a day by default); older batches are dropped.
      if (this.now() - b.createdAt > 20 * 3_600_000) {
        await this.d.wallet.removePendingBatch(b.idempotencyKey);
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
      answer = await this.d.identity.issue(issuerRequestUri, await this.d.accountKey(), fromBase64Url(batch.request, 'batch'), batch.idempotencyKey);
    } catch (e) {
      // A refusal the server states (no credit, quota) will not change on retry: forget the batch.
      const status = (e as { status?: number }).status;
      if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 409 && status !== 429) await this.d.wallet.removePendingBatch(batch.idempotencyKey);
      throw e;
    }
    const responses = decodeBatchTokenResponse(answer);
    if (responses.length !== batch.pending.length) {
      await this.d.wallet.removePendingBatch(batch.idempotencyKey);
      throw new Error(`the issuer answered ${responses.length} items for ${batch.pending.length} requests`);
    }
    const client = await TokenClient.forKey(batch.tokenKey);
    const tokens: string[] = [];
    let refused = 0;
    for (let i = 0; i < responses.length; i++) {
      const r = responses[i];
      if (!r) {
        refused++;
        continue;
      }
      // finalize verifies the signature under the key we checked: a token that does not
      // verify (a signer fault, a different key) throws instead of entering the wallet.
      tokens.push(toBase64Url(await client.finalize(batch.pending[i]!, r)));
    }
    if (batch.purpose === 'credit') {
      const credits = { tokens, tokenKey: batch.tokenKey, ...(batch.redemptionNotAfterSec !== undefined ? { redemptionNotAfterSec: batch.redemptionNotAfterSec } : {}) };
      await this.d.wallet.completeBatch(batch.idempotencyKey, { credits });
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
      await this.d.wallet.completeBatch(batch.idempotencyKey, abuse ? { abuse } : {});
    }
    return { issued: tokens.length, refused };
  }
}

/**
 * The token wallet: credit tokens prefetched into a pool, the two abuse tokens, and the
 * blinded state of issuance batches still in flight. Everything is one JSON document in a
 * secret store (VS Code's SecretStorage in the extension; an in-memory map in tests).
 *
 * Timing: a token is not redeemable right after its issuance. Each token gets its own
 * `usableAt = issuedAt + minAge + random(0..jitter)`, so the issuer cannot match a
 * redemption to the issuance that just happened; tokens are handed out in random order.
 */
import type { WalletCounts } from './uiState.js';
import { randomInt } from 'node:crypto';
import type { PendingToken } from '@llmtor/protocol/client';

/** The subset of vscode.SecretStorage the wallet needs. */
export interface SecretStore {
  get(key: string): PromiseLike<string | undefined>;
  store(key: string, value: string): PromiseLike<void>;
  delete(key: string): PromiseLike<void>;
}

export class MemorySecretStore implements SecretStore {
  readonly map = new Map<string, string>();
  async get(key: string) {
    return this.map.get(key);
  }
  async store(key: string, value: string) {
    this.map.set(key, value);
  }
  async delete(key: string) {
    this.map.delete(key);
  }
}

export interface CreditToken {
  /** base64url of the 354-byte token. */
  token: string;
  /** base64url SPKI of the key it was issued under. */
  tokenKey: string;
  issuedAt: number;
  usableAt: number;
  redemptionNotAfterSec?: number;
}

export interface AbuseToken {
  token: string;
  tokenKey: string;
  purpose: 'permanent' | 'transient';
  epoch?: string;
  issuedAt: number;
  redemptionNotAfterSec?: number;
}

/** An issuance request whose answer has not been processed yet (resent with the same Idempotency-Key). */
export interface PendingBatch {
  idempotencyKey: string;
  purpose: 'credit' | 'permanent' | 'transient';
  tokenKey: string;
  epoch?: string;
  redemptionNotAfterSec?: number;
  /** base64url of the encoded batch request. */
  request: string;
  pending: PendingToken[];
  createdAt: number;
}

interface WalletDoc {
  v: 1;
  credits: CreditToken[];
  permanent?: AbuseToken;
  transient?: AbuseToken;
  pendingBatches: PendingBatch[];
  /** When the transient token was last revoked (its replacement waits; refillPlan.ts). */
  lastRevokeAt?: number;
}

export const WALLET_SECRET_KEY = 'llmtor.wallet.v1';

export interface WalletOptions {
  /** Shortest time between issuance and redemption of a token. */
  minAgeMs: number;
  /** Extra random delay per token, uniform in [0, jitterMs]. */
  jitterMs: number;
  now?: () => number;
  /** Uniform integer in [0, n). */
  randomInt?: (n: number) => number;
  secretKey?: string;
}

export type { WalletCounts };

export class NoReadyTokensError extends Error {
  constructor(
    readonly needed: number,
    readonly counts: WalletCounts,
  ) {
    super(
      counts.total === 0
        ? `The wallet has no tokens; ${needed} needed. Get tokens (they need credit on your account) and wait for them to age.`
        : `${counts.ready} of ${counts.total} tokens are ready, ${needed} needed; the others are still ageing so that this request cannot be matched to their issuance.`,
    );
    this.name = 'NoReadyTokensError';
  }
}

export class Wallet {
  private doc: WalletDoc | undefined;
  /** Serialises read-modify-write cycles on the secret store. */
  private lock: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  private readonly rnd: (n: number) => number;
  private readonly key: string;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly store: SecretStore,
    private readonly opts: WalletOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.rnd = opts.randomInt ?? ((n) => (n <= 1 ? 0 : randomInt(n)));
    this.key = opts.secretKey ?? WALLET_SECRET_KEY;
  }

  /** Called after every change (status bar, webview). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  setTiming(minAgeMs: number, jitterMs: number): void {
    this.opts.minAgeMs = minAgeMs;
    this.opts.jitterMs = jitterMs;
  }

  private async load(): Promise<WalletDoc> {
    if (this.doc) return this.doc;
    const raw = await this.store.get(this.key);
    let doc: WalletDoc = { v: 1, credits: [], pendingBatches: [] };
    if (raw) {
      try {
        const parsed = JSON.parse(raw) as Partial<WalletDoc>;
        if (parsed && parsed.v === 1 && Array.isArray(parsed.credits)) {
          doc = { v: 1, credits: parsed.credits, pendingBatches: Array.isArray(parsed.pendingBatches) ? parsed.pendingBatches : [] };
          if (parsed.permanent) doc.permanent = parsed.permanent;
          if (parsed.transient) doc.transient = parsed.transient;
          if (typeof parsed.lastRevokeAt === 'number') doc.lastRevokeAt = parsed.lastRevokeAt;
        }
      } catch {
        // A corrupt wallet must not brick the extension; start empty (tokens are lost either way).
      }
    }
    this.doc = doc;
    return doc;
  }

  private mutate<T>(fn: (doc: WalletDoc) => T | Promise<T>): Promise<T> {
    const run = this.lock.then(async () => {
      const doc = await this.load();
      const result = await fn(doc);
      await this.store.store(this.key, JSON.stringify(doc));
      for (const l of this.listeners) l();
      return result;
    });
    this.lock = run.catch(() => undefined);
    return run;
  }

  private read<T>(fn: (doc: WalletDoc) => T): Promise<T> {
    const run = this.lock.then(async () => fn(await this.load()));
    this.lock = run.catch(() => undefined);
    return run;
  }

  private unexpired(doc: WalletDoc, now: number): CreditToken[] {
    const s = Math.floor(now / 1000);
    return doc.credits.filter((t) => t.redemptionNotAfterSec === undefined || s < t.redemptionNotAfterSec);
  }

  /** Adds freshly issued credit tokens, each with its own random ready time. */
  addCredits(tokens: readonly string[], meta: { tokenKey: string; redemptionNotAfterSec?: number }): Promise<void> {
    return this.mutate((doc) => this.pushCredits(doc, tokens, meta));
  }

  /**
   * Stores the outcome of an issuance batch and forgets the batch, in one write (a crash
   * cannot leave both the tokens and a batch that would fetch them again).
   */
  completeBatch(idempotencyKey: string, outcome: { credits?: { tokens: readonly string[]; tokenKey: string; redemptionNotAfterSec?: number }; abuse?: AbuseToken }): Promise<void> {
    return this.mutate((doc) => {
      if (outcome.credits) this.pushCredits(doc, outcome.credits.tokens, outcome.credits);
      if (outcome.abuse) doc[outcome.abuse.purpose] = outcome.abuse;
      doc.pendingBatches = doc.pendingBatches.filter((b) => b.idempotencyKey !== idempotencyKey);
    });
  }

  private pushCredits(doc: WalletDoc, tokens: readonly string[], meta: { tokenKey: string; redemptionNotAfterSec?: number }): void {
    {
      const issuedAt = this.now();
      for (const token of tokens) {
        const t: CreditToken = {
          token,
          tokenKey: meta.tokenKey,
          issuedAt,
          usableAt: issuedAt + this.opts.minAgeMs + (this.opts.jitterMs > 0 ? this.rnd(this.opts.jitterMs + 1) : 0),
        };
        if (meta.redemptionNotAfterSec !== undefined) t.redemptionNotAfterSec = meta.redemptionNotAfterSec;
        doc.credits.push(t);
      }
    }
  }

  counts(): Promise<WalletCounts> {
    return this.read((doc) => countsOf(this.unexpired(doc, this.now()), this.now()));
  }

  /**
   * Takes `k` ready tokens out of the wallet (random choice among the ready ones). They are
   * gone from the wallet from now on: a token that reached the server may be spent. The
   * caller gives them back with `putBack` only when the server certainly never saw them.
   */
  take(k: number): Promise<CreditToken[]> {
    return this.mutate((doc) => {
      const now = this.now();
      const live = this.unexpired(doc, now);
      const ready = live.filter((t) => t.usableAt <= now);
      if (ready.length < k) throw new NoReadyTokensError(k, countsOf(live, now));
      const chosen: CreditToken[] = [];
      for (let i = 0; i < k; i++) chosen.push(ready.splice(this.rnd(ready.length), 1)[0]!);
      const taken = new Set(chosen.map((t) => t.token));
      doc.credits = live.filter((t) => !taken.has(t.token));
      return chosen;
    });
  }

  putBack(tokens: readonly CreditToken[]): Promise<void> {
    return this.mutate((doc) => {
      const have = new Set(doc.credits.map((t) => t.token));
      for (const t of tokens) if (!have.has(t.token)) doc.credits.push(t);
    });
  }

  /** Drops tokens whose key is no longer redeemable. */
  dropExpired(): Promise<number> {
    return this.mutate((doc) => {
      const before = doc.credits.length;
      doc.credits = this.unexpired(doc, this.now());
      return before - doc.credits.length;
    });
  }

  abuseTokens(): Promise<{ permanent?: AbuseToken; transient?: AbuseToken }> {
    return this.read((doc) => ({ ...(doc.permanent ? { permanent: doc.permanent } : {}), ...(doc.transient ? { transient: doc.transient } : {}) }));
  }

  setAbuseToken(t: AbuseToken): Promise<void> {
    return this.mutate((doc) => {
      doc[t.purpose] = t;
    });
  }

  clearAbuseToken(purpose: 'permanent' | 'transient'): Promise<void> {
    return this.mutate((doc) => {
      delete doc[purpose];
    });
  }

  /** Forgets the revoked transient token and records when (its replacement comes at a later scheduled refill). */
  revokedTransient(at: number): Promise<void> {
    return this.mutate((doc) => {
      delete doc.transient;
      doc.lastRevokeAt = at;
    });
  }

  lastRevokeAt(): Promise<number | undefined> {
    return this.read((doc) => doc.lastRevokeAt);
  }

  /** Records a batch before it is sent, so that a crash or a lost answer can be retried. */
  addPendingBatch(b: PendingBatch): Promise<void> {
    return this.mutate((doc) => {
      doc.pendingBatches.push(b);
    });
  }

  pendingBatches(): Promise<PendingBatch[]> {
    return this.read((doc) => [...doc.pendingBatches]);
  }

  removePendingBatch(idempotencyKey: string): Promise<void> {
    return this.mutate((doc) => {
      doc.pendingBatches = doc.pendingBatches.filter((b) => b.idempotencyKey !== idempotencyKey);
    });
  }

  /** Forgets everything (sign-out). */
  async clear(): Promise<void> {
    await this.mutate((doc) => {
      doc.credits = [];
      doc.pendingBatches = [];
      delete doc.permanent;
      delete doc.transient;
    });
    await this.store.delete(this.key);
    this.doc = undefined;
  }
}

function countsOf(live: readonly CreditToken[], now: number): WalletCounts {
  let ready = 0;
  let nextReadyAt: number | undefined;
  for (const t of live) {
    if (t.usableAt <= now) ready++;
    else if (nextReadyAt === undefined || t.usableAt < nextReadyAt) nextReadyAt = t.usableAt;
  }
  return { total: live.length, ready, nextReadyAt };
}

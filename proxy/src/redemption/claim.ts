/**
 * Stage 2 of a redemption: claim the tokens. One store call (one Lua script in Redis) checks
 * the blacklist, replay / in-progress / conflict and the rate limit, and claims all k tokens.
 * The result is a `Claim` the later stages end with `finish` (answer delivered) or `release`
 * (nothing delivered), or the answer cached for an earlier identical request.
 */
import type { Admission, TokenSpend } from './admit.js';
import { decodeAnswer, encodeAnswer, type CachedAnswer } from './cachedAnswer.js';
import { NO_RETRY, RedemptionError } from './errors.js';
import type { RedemptionRuntime } from './runtime.js';
import { ClaimNotApplied } from './store.js';

/** What `release` does to the tokens: `retryable` for the same request, or `free` for any request. */
export type ReleaseMode = 'retryable' | 'free';

/** The claimed tokens of one request, until the answer is finished or the claim released. */
export class Claim {
  constructor(
    private readonly runtime: RedemptionRuntime,
    private readonly spend: TokenSpend,
  ) {}

  /** Marks the tokens done and caches the answer (encrypted under the tokens) for a retry of the same request. */
  async finish(answer: CachedAnswer | undefined): Promise<void> {
    const cfg = this.runtime.config;
    const plain = answer ? encodeAnswer(answer) : undefined;
    const blob = plain && plain.length <= cfg.retryCacheMaxBytes ? this.spend.secrets.seal(plain, this.spend.binding) : undefined;
    try {
      await this.record(blob);
    } catch {
      // The claim is recorded (the token cannot be spent twice); keep trying to record the finish, or a
      // retry of this request would wait out the lease and then reach the upstream a second time.
      this.runtime.logger.warn('redemption: could not record a finished answer (store unavailable); retrying in the background');
      this.finishLater(blob);
    }
  }

  /** Nothing was delivered: the tokens go back (`retryable` for this request, `free` for any). */
  async release(mode: ReleaseMode): Promise<void> {
    const s = this.spend;
    try {
      await this.runtime.store.release(s.spentIds, s.expiresAt, s.binding, mode);
    } catch {
      // Left "in progress": after the lease a retry of the same request takes it over.
      this.runtime.logger.warn('redemption: could not release a claim (store unavailable)');
    }
  }

  private record(blob: Buffer | undefined): Promise<boolean> {
    const s = this.spend;
    return this.runtime.store.finish(s.spentIds, s.expiresAt, s.binding, blob, this.runtime.config.retryCacheTtlSeconds * 1000);
  }

  /**
   * Retries a finish that failed (store unreachable) with back-off, until it succeeds, the claim is
   * no longer ours, or the lease ends (then a retry of the request may take the claim over anyway).
   */
  private finishLater(blob: Buffer | undefined): void {
    if (pendingFinishes >= MAX_PENDING_FINISHES) return;
    pendingFinishes++;
    const giveUpAt = Date.now() + this.runtime.config.inProgressLeaseSeconds * 1000;
    let delay = 250;
    const attempt = (): void => {
      this.record(blob).then(
        () => pendingFinishes--,
        () => {
          delay = Math.min(delay * 2, 5_000);
          if (Date.now() + delay > giveUpAt) {
            pendingFinishes--;
            this.runtime.logger.warn('redemption: gave up recording a finished answer; a retry takes the claim over after its lease');
            return;
          }
          setTimeout(attempt, delay).unref();
        },
      );
    };
    setTimeout(attempt, delay).unref();
  }
}

/** Finishes waiting for the store to come back, at most this many at a time (each holds its sealed answer). */
const MAX_PENDING_FINISHES = 1_000;
let pendingFinishes = 0;

/** Either the tokens are now this request's, or the same request was answered before and its answer is cached. */
export type ClaimOutcome = { kind: 'claimed'; claim: Claim } | { kind: 'replay'; answer: CachedAnswer };

export async function claim(runtime: RedemptionRuntime, a: Admission): Promise<ClaimOutcome> {
  const cfg = runtime.config;
  const { spentIds, expiresAt, binding } = a.spend;
  if (!runtime.store.healthy()) throw storeUnavailable();
  let result;
  try {
    result = await runtime.store.claim({
      spentIds,
      expiresAt,
      binding,
      now: a.now,
      leaseMs: cfg.inProgressLeaseSeconds * 1000,
      ...(a.pseudonym ? { pseudonym: { permanent: a.pseudonym.permanent, transient: a.pseudonym.transient } } : {}),
      rateLimit: { limit: cfg.rateLimit.requests, windowMs: cfg.rateLimit.windowSeconds * 1000 },
    });
  } catch (e) {
    runtime.logger.warn('redemption: spent-token store unavailable');
    throw e instanceof ClaimNotApplied ? storeUnavailable() : storeFailedDuringClaim(cfg.inProgressLeaseSeconds);
  }

  switch (result.kind) {
    case 'blacklisted':
      throw new RedemptionError('pseudonym_blocked', 'this pseudonym (abuse tokens) is blocked; nothing was spent', { headers: NO_RETRY });
    case 'rate_limited':
      throw new RedemptionError('rate_limited', 'too many requests for this pseudonym; nothing was spent', { headers: { 'retry-after': String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))) } });
    case 'conflict':
      throw new RedemptionError('token_spent', 'a credit token in this request was already redeemed for a different request', { headers: NO_RETRY });
    case 'in_progress':
      throw new RedemptionError('request_in_progress', 'this request with these tokens is being answered right now; retry shortly to get the same answer', {
        headers: { 'retry-after': String(Math.min(5, Math.max(1, Math.ceil(result.retryAfterMs / 1000)))) },
      });
    case 'done': {
      const plain = result.cached ? a.spend.secrets.open(result.cached, binding) : undefined;
      const answer = plain ? decodeAnswer(plain) : undefined;
      if (!answer) {
        throw new RedemptionError('token_spent', `these tokens were already redeemed for this request and its answer is no longer kept (answers are kept ${cfg.retryCacheTtlSeconds} s, streams interrupted by the client are not kept)`, {
          headers: NO_RETRY,
        });
      }
      return { kind: 'replay', answer };
    }
    case 'unconfirmed':
      runtime.logger.warn('redemption: claim not confirmed on enough Redis replicas');
      if (!result.released) throw storeFailedDuringClaim(cfg.inProgressLeaseSeconds);
      throw new RedemptionError(
        'store_unavailable',
        `the spent-token store could not confirm the claim on a replica within ${cfg.durableClaims.timeoutMs} ms (a failover could have lost it); nothing was forwarded and the claim was undone, so nothing was spent: retry later`,
        { headers: { 'retry-after': '1' }, extra: { tokens_spent: false } },
      );
    case 'claimed':
      runtime.metrics.tokensSpent.inc(a.credits);
      return { kind: 'claimed', claim: new Claim(runtime, a.spend) };
  }
}

function storeUnavailable(): RedemptionError {
  return new RedemptionError('store_unavailable', 'the spent-token store is unreachable; nothing was spent, retry later', { headers: { 'retry-after': '1' }, extra: { tokens_spent: false } });
}

/** The store failed with the claim possibly applied (the connection broke after sending it): say what is known. */
function storeFailedDuringClaim(leaseSeconds: number): RedemptionError {
  return new RedemptionError(
    'store_unavailable',
    `the spent-token store failed while the tokens were being claimed; nothing was forwarded. If the claim was recorded before the failure, the tokens are held for this same request: retry it unchanged (same body and tokens) to get its answer, after at most ${leaseSeconds} s (409 request_in_progress until then); otherwise they are unspent`,
    { headers: { 'retry-after': '1' }, extra: { tokens_spent: 'unknown' } },
  );
}

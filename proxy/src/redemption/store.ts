/**
 * What the redemption path needs from storage. Two implementations with the
 * same semantics: `redisStore.ts` (Lua scripts, shared by every pod) and
 * `memoryStore.ts` (embedded single-process default).
 *
 * Spent-set entry per token (derived from SHA-256(token); redisStore.ts has the Redis layout),
 * kept until the end of the token key's redemption window, in one of three states
 *   p  <binding> <leaseUntilMs>   claimed, answer in progress
 *   d  <binding>                  done (answer delivered; maybe cached)
 *   r  <binding>                  upstream failed: the same request may claim it again
 * where <binding> is (a hash of) the keyed hash of the canonical request (tokenHashes.ts).
 */

export interface ClaimRequest {
  spentIds: string[];
  /** Absolute expiry (ms since epoch) per spent id. */
  expiresAt: number[];
  binding: string;
  now: number;
  leaseMs: number;
  /** Pseudonym parts to check against the blacklist, and the rate-limit bucket; undefined without abuse tokens. */
  pseudonym?: { permanent: string; transient: string };
  rateLimit?: { limit: number; windowMs: number };
}

export type ClaimResult =
  | { kind: 'claimed' }
  | { kind: 'done'; cached?: Buffer }
  | { kind: 'in_progress'; retryAfterMs: number }
  | { kind: 'conflict' }
  | { kind: 'blacklisted' }
  | { kind: 'rate_limited'; retryAfterMs: number }
  /**
   * Claimed on the primary, but not confirmed on enough replicas in time (a failover could lose
   * it): nothing may be forwarded. `released`: the claim was undone, the tokens are unspent.
   */
  | { kind: 'unconfirmed'; released: boolean };

/**
 * A claim that certainly did not and will not take effect (it timed out before its deadline in
 * Redis, or reached Redis too late): the client may be told that nothing was spent. Any other
 * error from claim() leaves that open (the connection broke after the claim may have run).
 */
export class ClaimNotApplied extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClaimNotApplied';
  }
}

export type BlacklistKind = 'permanent' | 'transient';

export interface BlacklistEntry {
  kind: BlacklistKind;
  pseudonym: string;
  /** ms since epoch, or undefined for no expiry. */
  expiresAt?: number;
}

export interface RedemptionStore {
  /** Blacklist check, duplicate/replay check, rate limit and claim of every token, atomically. */
  claim(req: ClaimRequest): Promise<ClaimResult>;
  /**
   * p → d for every token (only if still ours) and the encrypted answer cached; false if the claim was lost.
   * `expiresAt` as in the claim (it names where a token's entry lives).
   */
  finish(spentIds: string[], expiresAt: number[], binding: string, cached: Buffer | undefined, cacheTtlMs: number): Promise<boolean>;
  /** p → r (retryable for the same request) or p → deleted (`free`: usable for any request). */
  release(spentIds: string[], expiresAt: number[], binding: string, mode: 'retryable' | 'free'): Promise<void>;
  blacklistAdd(entry: BlacklistEntry): Promise<void>;
  blacklistRemove(kind: BlacklistKind, pseudonym: string): Promise<boolean>;
  blacklistList(): Promise<BlacklistEntry[]>;
  /** Counts a moderation flag; returns the pseudonym's count. */
  flag(permanent: string, ttlMs: number): Promise<number>;
  flagged(limit: number): Promise<{ pseudonym: string; flags: number }[]>;
  /** Usable now (connection up). */
  healthy(): boolean;
}

/**
 * When to get tokens, and how many: a schedule that does not depend on usage (DESIGN
 * "Privacy invariants"; docs/privacy.md "Issuance timing"). Pure: the clock, the random
 * source and the pool state are inputs; RefillScheduler does the I/O.
 *
 * - The client wakes at random intervals (exponential, with a floor and a cap), not after a
 *   send: a send changes nothing about when the next wake is.
 * - At a wake it gets a FIXED batch of credit tokens if the pool is below a low-water mark
 *   plus a random slack drawn afresh at every wake, or, with a small probability, as a cover
 *   refill while the pool is below a cap; otherwise it does nothing. The amount never
 *   mirrors what was spent.
 * - The anonymous directory fetch (key consistency) has its own random timer, and issuance
 *   waits if a directory fetch happened less than `directoryGapMs` ago.
 * - A revoked transient abuse token is replaced at a later wake, never within
 *   `revokeGapMs` of the revocation (and on another circuit).
 * - Abuse tokens are requested only when the account has credit (or tokens) to use them with.
 */
import type { AbuseTokenAction } from './epoch.js';

export interface RefillPolicy {
  /** Credit tokens per issuance (always this many, bounded only by the balance). */
  batchSize: number;
  /** Refill when the pool holds fewer than lowWater + U(0, slackMax) tokens. */
  lowWater: number;
  slackMax: number;
  /**
   * Cover refills: at a wake above the low-water mark, still get a batch with this probability
   * while the pool stays at or below maxPool. They make "a refill today" say little about
   * today's use (docs/privacy.md, the simulation).
   */
  coverProb: number;
  maxPool: number;
  /** Wake intervals: exponential with this mean, clamped to [min, max]. */
  meanIntervalMs: number;
  minIntervalMs: number;
  maxIntervalMs: number;
  /** Anonymous directory fetches: exponential with this mean, clamped to [min, max]. */
  directoryMeanMs: number;
  directoryMinMs: number;
  directoryMaxMs: number;
  /** No issuance this soon after a directory fetch. */
  directoryGapMs: number;
  /** No abuse-token issuance this soon after a revocation. */
  revokeGapMs: number;
}

export const DEFAULT_REFILL_POLICY: RefillPolicy = {
  // Big, rare batches and a wide random slack: in the simulation (test/sim) smaller batches
  // let an operator match a day's issuances to a day's chats well above chance (batch 20:
  // ~13 %, batch 100 with slack 40: ~4 %, this: ~3 %, against 2 % chance for 50 users).
  batchSize: 150,
  lowWater: 50,
  slackMax: 100,
  coverProb: 0,
  maxPool: 400,
  meanIntervalMs: 3 * 3_600_000,
  minIntervalMs: 30 * 60_000,
  maxIntervalMs: 10 * 3_600_000,
  directoryMeanMs: 6 * 3_600_000,
  directoryMinMs: 20 * 60_000,
  directoryMaxMs: 12 * 3_600_000,
  directoryGapMs: 15 * 60_000,
  revokeGapMs: 2 * 3_600_000,
};

export interface PoolState {
  /** Credit tokens held (ready or still ageing). */
  total: number;
  /** The account's balance when known (undefined: unknown, the issuer will bound it). */
  balance: number | undefined;
  permanent: AbuseTokenAction;
  transient: AbuseTokenAction;
  lastRevokeAt?: number;
  lastDirectoryAt?: number;
}

export interface RefillStep {
  /** Credit tokens to get now (0 or exactly the batch size, bounded by a known balance). */
  batch: number;
  /** Abuse tokens to get now. */
  abuse: ('permanent' | 'transient')[];
  /** The next wake. */
  nextAt: number;
}

/** Uniform [0, 1). */
export type Rng = () => number;

function expClamped(rng: Rng, mean: number, min: number, max: number): number {
  const u = Math.min(rng(), 1 - 1e-12);
  return Math.min(max, Math.max(min, Math.round(-mean * Math.log(1 - u))));
}

/** The first wake after the schedule starts (on the user's first explicit use, never at activation). */
export function firstWake(now: number, rng: Rng, p: RefillPolicy = DEFAULT_REFILL_POLICY): number {
  return now + expClamped(rng, p.meanIntervalMs, p.minIntervalMs, p.maxIntervalMs);
}

/** The next anonymous directory fetch. */
export function nextDirectoryFetch(now: number, rng: Rng, p: RefillPolicy = DEFAULT_REFILL_POLICY): number {
  return now + expClamped(rng, p.directoryMeanMs, p.directoryMinMs, p.directoryMaxMs);
}

/** What to do at a scheduled wake at `now`, and when to wake next. */
export function planRefill(now: number, rng: Rng, s: PoolState, p: RefillPolicy = DEFAULT_REFILL_POLICY): RefillStep {
  const nextAt = now + expClamped(rng, p.meanIntervalMs, p.minIntervalMs, p.maxIntervalMs);
  const slack = Math.floor(rng() * (p.slackMax + 1));
  if (s.lastDirectoryAt !== undefined && now - s.lastDirectoryAt < p.directoryGapMs) return { batch: 0, abuse: [], nextAt };
  const cover = rng() < p.coverProb && s.total + p.batchSize <= p.maxPool;
  let batch = s.total < p.lowWater + slack || cover ? p.batchSize : 0;
  if (s.balance !== undefined) batch = Math.min(batch, Math.max(0, s.balance));
  // Unknown balance: maybe (the adapter reads it before asking for abuse tokens).
  const hasCredit = s.total > 0 || s.balance === undefined || s.balance > 0;
  const abuse: ('permanent' | 'transient')[] = [];
  if (hasCredit) {
    if (s.permanent !== 'keep') abuse.push('permanent');
    if (s.transient !== 'keep' && (s.lastRevokeAt === undefined || now - s.lastRevokeAt >= p.revokeGapMs)) abuse.push('transient');
  }
  return { batch, abuse, nextAt };
}

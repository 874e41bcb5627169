import assert from 'node:assert/strict';
import { DEFAULT_REFILL_POLICY as P, firstWake, nextDirectoryFetch, planRefill, type PoolState } from '../src/core/refillPlan.js';

/** Deterministic uniform [0,1) (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const base: PoolState = { total: 0, balance: 10_000, permanent: 'keep', transient: 'keep' };
const T = Date.UTC(2026, 11, 1);

describe('refill plan (pure)', () => {
  it('wakes at random intervals within [floor, cap] whose mean is near the policy mean', () => {
    const r = rng(1);
    const gaps = Array.from({ length: 4000 }, () => planRefill(T, r, base).nextAt - T);
    for (const g of gaps) assert.ok(g >= P.minIntervalMs && g <= P.maxIntervalMs);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    assert.ok(mean > 0.8 * P.meanIntervalMs && mean < 1.2 * P.meanIntervalMs, `mean ${mean}`);
    assert.ok(new Set(gaps).size > 3000, 'intervals are not a fixed period');
  });

  it('the next wake does not depend on the pool (a send changes nothing about when)', () => {
    for (let seed = 0; seed < 50; seed++) {
      const full = planRefill(T, rng(seed), { ...base, total: 500 });
      const empty = planRefill(T, rng(seed), { ...base, total: 0 });
      assert.equal(full.nextAt, empty.nextAt);
    }
  });

  it('gets exactly one fixed batch below the low-water mark plus slack, nothing above it', () => {
    for (let seed = 0; seed < 200; seed++) {
      const low = planRefill(T, rng(seed), { ...base, total: P.lowWater - 1 });
      assert.equal(low.batch, P.batchSize);
      const high = planRefill(T, rng(seed), { ...base, total: P.lowWater + P.slackMax });
      assert.equal(high.batch, 0);
    }
    const between = Array.from({ length: 500 }, (_, s) => planRefill(T, rng(s), { ...base, total: P.lowWater + Math.floor(P.slackMax / 2) }).batch);
    assert.ok(between.includes(0) && between.includes(P.batchSize), 'the slack is random per wake');
  });

  it('bounds the batch by a known balance and asks for abuse tokens only with credit', () => {
    assert.equal(planRefill(T, rng(1), { ...base, balance: 3 }).batch, 3);
    const none = planRefill(T, rng(1), { ...base, balance: 0, permanent: 'obtain', transient: 'obtain' });
    assert.deepEqual([none.batch, none.abuse], [0, []]);
    assert.deepEqual(planRefill(T, rng(1), { ...base, permanent: 'obtain', transient: 'renew' }).abuse, ['permanent', 'transient']);
  });

  it('does not re-issue a revoked transient token within the revoke gap', () => {
    const s = { ...base, total: 50, transient: 'obtain' as const, lastRevokeAt: T };
    assert.deepEqual(planRefill(T + P.revokeGapMs - 1, rng(1), s).abuse, []);
    assert.deepEqual(planRefill(T + P.revokeGapMs, rng(1), s).abuse, ['transient']);
  });

  it('does nothing within the gap after a directory fetch', () => {
    const s = { ...base, permanent: 'obtain' as const, lastDirectoryAt: T - 1000 };
    assert.deepEqual(planRefill(T, rng(1), s), { batch: 0, abuse: [], nextAt: planRefill(T, rng(1), s).nextAt });
    assert.equal(planRefill(T + P.directoryGapMs, rng(1), s).batch, P.batchSize);
  });

  it('first wake and directory fetches are random and never immediate', () => {
    for (let s = 0; s < 100; s++) {
      assert.ok(firstWake(T, rng(s)) - T >= P.minIntervalMs);
      const d = nextDirectoryFetch(T, rng(s)) - T;
      assert.ok(d >= P.directoryMinMs && d <= P.directoryMaxMs);
    }
  });
});

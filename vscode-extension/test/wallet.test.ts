import assert from 'node:assert/strict';
import { MemorySecretStore, NoReadyTokensError, Wallet, WALLET_SECRET_KEY } from '../src/core/wallet.js';

function clock(start = Date.UTC(2026, 10, 25, 12)) {
  const c = { t: start, now: () => c.t };
  return c;
}

const KEY = 'a2V5';

describe('wallet', () => {
  it('does not hand out a token before its minimum age plus its own random delay', async () => {
    const c = clock();
    const w = new Wallet(new MemorySecretStore(), { minAgeMs: 60_000, jitterMs: 30_000, now: c.now, randomInt: (n) => n - 1 });
    await w.addCredits(['t1', 't2'], { tokenKey: KEY });
    await assert.rejects(w.take(1), NoReadyTokensError);
    c.t += 60_000;
    await assert.rejects(w.take(1), NoReadyTokensError, 'the jitter (here its maximum) still applies');
    c.t += 30_000;
    assert.equal((await w.take(1)).length, 1);
    assert.deepEqual(await w.counts(), { total: 1, ready: 1, nextReadyAt: undefined });
  });

  it('spreads ready times uniformly within [minAge, minAge + jitter]', async () => {
    const c = clock();
    const w = new Wallet(new MemorySecretStore(), { minAgeMs: 1000, jitterMs: 5000, now: c.now });
    await w.addCredits(Array.from({ length: 200 }, (_, i) => `t${i}`), { tokenKey: KEY });
    const counts = await w.counts();
    assert.equal(counts.ready, 0);
    assert.ok(counts.nextReadyAt! >= c.t + 1000 && counts.nextReadyAt! <= c.t + 1100, 'the earliest of 200 uniform delays is near the minimum');
    c.t += 3500;
    const mid = (await w.counts()).ready;
    assert.ok(mid > 60 && mid < 140, `about half are ready half-way through the jitter (got ${mid})`);
    c.t += 2500;
    assert.equal((await w.counts()).ready, 200);
  });

  it('tells how many are ready and when the next one will be when the pool cannot pay', async () => {
    const c = clock();
    const w = new Wallet(new MemorySecretStore(), { minAgeMs: 10_000, jitterMs: 0, now: c.now });
    await assert.rejects(w.take(1), (e: unknown) => e instanceof NoReadyTokensError && e.counts.total === 0 && /no tokens/.test(e.message));
    await w.addCredits(['a'], { tokenKey: KEY });
    c.t += 10_000;
    await w.addCredits(['b', 'c'], { tokenKey: KEY });
    await assert.rejects(w.take(2), (e: unknown) => e instanceof NoReadyTokensError && e.needed === 2 && e.counts.ready === 1 && e.counts.total === 3 && e.counts.nextReadyAt === c.t + 10_000);
    assert.equal((await w.counts()).total, 3, 'a failed take takes nothing');
  });

  it('removes taken tokens for good, never hands one out twice, and takes back unspent ones', async () => {
    const c = clock();
    const w = new Wallet(new MemorySecretStore(), { minAgeMs: 0, jitterMs: 0, now: c.now });
    await w.addCredits(['a', 'b', 'c', 'd'], { tokenKey: KEY });
    const [x, y] = await Promise.all([w.take(2), w.take(2)]);
    const all = [...x!, ...y!].map((t) => t.token).sort();
    assert.deepEqual(all, ['a', 'b', 'c', 'd']);
    assert.equal((await w.counts()).total, 0);
    await w.putBack(x!);
    await w.putBack(x!);
    assert.equal((await w.counts()).total, 2, 'putting back twice does not duplicate');
  });

  it('keeps its state in the secret store across restarts and drops tokens whose key expired', async () => {
    const c = clock();
    const store = new MemorySecretStore();
    const w1 = new Wallet(store, { minAgeMs: 0, jitterMs: 0, now: c.now });
    const expSec = Math.floor(c.t / 1000) + 3600;
    await w1.addCredits(['old'], { tokenKey: KEY, redemptionNotAfterSec: expSec });
    await w1.addCredits(['new'], { tokenKey: KEY });
    await w1.setAbuseToken({ token: 'p', tokenKey: KEY, purpose: 'permanent', issuedAt: c.t });
    assert.ok(store.map.get(WALLET_SECRET_KEY)?.includes('"old"'));
    const w2 = new Wallet(store, { minAgeMs: 0, jitterMs: 0, now: c.now });
    assert.equal((await w2.counts()).total, 2);
    assert.equal((await w2.abuseTokens()).permanent?.token, 'p');
    c.t += 3600_000;
    assert.equal((await w2.counts()).total, 1, 'an expired token is not counted');
    assert.equal(await w2.dropExpired(), 1);
    assert.deepEqual((await w2.take(1)).map((t) => t.token), ['new']);
  });

  it('stores a batch outcome and forgets the batch in one write', async () => {
    const store = new MemorySecretStore();
    const w = new Wallet(store, { minAgeMs: 0, jitterMs: 0 });
    await w.addPendingBatch({ idempotencyKey: 'k1', purpose: 'credit', tokenKey: KEY, request: 'AA', pending: [], createdAt: 1 });
    let writes = 0;
    const orig = store.store.bind(store);
    store.store = async (k, v) => {
      writes++;
      return orig(k, v);
    };
    await w.completeBatch('k1', { credits: { tokens: ['x', 'y'], tokenKey: KEY } });
    assert.equal(writes, 1);
    assert.deepEqual(await w.pendingBatches(), []);
    assert.equal((await w.counts()).total, 2);
  });

  it('starts empty on a corrupt document and forgets everything on clear', async () => {
    const store = new MemorySecretStore();
    store.map.set(WALLET_SECRET_KEY, '{not json');
    const w = new Wallet(store, { minAgeMs: 0, jitterMs: 0 });
    assert.equal((await w.counts()).total, 0);
    await w.addCredits(['a'], { tokenKey: KEY });
    await w.clear();
    assert.equal(store.map.has(WALLET_SECRET_KEY), false);
    assert.equal((await w.counts()).total, 0);
  });
});

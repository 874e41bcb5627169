/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeTokenRequest, MEDIA_TYPE_TOKEN_REQUEST, TOKEN_TYPE_BLIND_RSA } from '@llmtor/protocol';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { adminGrant, createAccount } from '../../src/dev/issuanceClient.js';
import { ReservationSweeper } from '../../src/issuance/reservationSweeper.js';
import { checkJournal } from '../../src/ledger/journal.js';
import type { IssuanceStore } from '../../src/store/issuanceStore.js';
import { MemoryIssuanceStore } from '../../src/store/memoryIssuanceStore.js';
import { RedisIssuanceStore } from '../../src/store/redisIssuanceStore.js';
import { accountRef, ADMIN_TOKEN, keyOf, randomBlindedMsg, sharedTestKeys, startIssuanceProxy } from '../support/issuanceHarness.js';
import { controllableSigner } from '../support/testSigner.js';

const DAY = 86_400_000;
const ABANDONED = 300_000;
const silent = pino({ level: 'silent' });

async function ledgerOk(store: IssuanceStore, account: string, balance: number) {
  assert.equal(await store.balance(account), balance);
  assert.deepEqual(checkJournal(await store.journal(account), balance).problems, []);
}

/**
 * Two "pods" (stores on their own connections, each with its own sweeper) and a
 * clock the test moves. For the in-process store both pods share the store.
 */
function scenario(name: string, makeStores: () => Promise<{ stores: [IssuanceStore, IssuanceStore]; close(): Promise<void> }>) {
  it(`${name}: reservations whose pod died are given back exactly once by two pods sweeping at once; the journal stays consistent; a late answer is withheld and a late retry pays afresh`, async () => {
    const { stores, close } = await makeStores();
    try {
      let clock = Date.now();
      const accounts = [`acct_${randomBytes(16).toString('hex')}`, `acct_${randomBytes(16).toString('hex')}`];
      for (const a of accounts) {
        await stores[0].createAccount(randomBytes(32).toString('hex'), a, clock);
        await stores[0].grant(a, 20, `grant_${a}`, 'test', clock);
      }
      const reserve = (store: IssuanceStore, account: string, requestId: string, count: number, purpose: 'credit' | 'permanent' = 'credit') =>
        store.reserveIssuance(account, { requestId, bodyHash: `h-${requestId}`, purpose, epoch: '', count, quotaLimit: 1, abuseRequires: 'none', now: clock, ttlMs: DAY, takeoverMs: 30_000 });
      const complete = (store: IssuanceStore, account: string, requestId: string) => store.completeIssuance(account, { requestId, response: new Uint8Array([1, 2, 3]), failed: 0, now: clock, ttlMs: DAY });

      // Five requests per account die after the debit (1 + 2 + … + 5 = 15 credits), spread over both pods;
      // one finishes normally; the permanent abuse token's quota is taken and abandoned too.
      for (const a of accounts) {
        for (let i = 1; i <= 5; i++) assert.equal((await reserve(stores[i % 2]!, a, `dead-${i}`, i)).kind, 'reserved');
        assert.equal((await reserve(stores[0], a, 'finished', 2)).kind, 'reserved');
        assert.equal(await complete(stores[0], a, 'finished'), 'ok');
        assert.equal((await reserve(stores[1], a, 'perm-dead', 1, 'permanent')).kind, 'reserved');
        await ledgerOk(stores[0], a, 3);
      }
      const sweepers = stores.map((store) => new ReservationSweeper({ store, now: () => clock, logger: silent, abandonedAfterMs: ABANDONED, intervalMs: 60_000, batchSize: 3 }));

      clock += ABANDONED - 1_000;
      assert.deepEqual((await Promise.all(sweepers.map((s) => s.runOnce()))).flat(), [], 'nothing is abandoned yet');

      clock += 2_000;
      const swept = (await Promise.all(sweepers.map((s) => s.runOnce()))).flat();
      assert.equal(swept.length, 12, 'every abandoned request is given back by exactly one pod');
      assert.equal(new Set(swept.map((s) => `${s.accountId} ${s.requestId}`)).size, 12);
      for (const a of accounts) {
        await ledgerOk(stores[1], a, 18);
        const refunds = (await stores[1].journal(a)).filter((e) => e.type === 'issue_refund');
        assert.deepEqual(refunds.map((e) => e.delta).sort(), [1, 2, 3, 4, 5]);
        assert.ok(refunds.every((e) => e.note?.startsWith('abandoned')));
      }
      assert.deepEqual((await Promise.all(sweepers.map((s) => s.runOnce()))).flat(), [], 'a second pass finds nothing');

      const a = accounts[0]!;
      // The pod was only slow, not dead: its late answer is refused (it must not go out unpaid) and changes nothing.
      assert.equal(await complete(stores[0], a, 'dead-3'), 'aborted');
      await stores[0].abortIssuance(a, { requestId: 'dead-4', now: clock });
      await ledgerOk(stores[0], a, 18);
      // A late retry of the same request reserves (and pays) afresh and finishes; a retry after that replays.
      assert.equal((await reserve(stores[1], a, 'dead-3', 3)).kind, 'reserved');
      assert.equal(await complete(stores[1], a, 'dead-3'), 'ok');
      assert.equal((await reserve(stores[0], a, 'dead-3', 3)).kind, 'replay');
      await ledgerOk(stores[0], a, 15);
      // The permanent token's quota came back: the account can get its one permanent token.
      assert.equal((await reserve(stores[0], a, 'perm-again', 1, 'permanent')).kind, 'reserved');
      assert.equal((await reserve(stores[0], a, 'perm-third', 1, 'permanent')).kind, 'quota');
      // A retry that took over a request in time keeps it alive; it is swept only once abandoned itself.
      assert.equal((await reserve(stores[0], a, 'taken-over', 1)).kind, 'reserved');
      clock += 40_000;
      assert.equal((await reserve(stores[1], a, 'taken-over', 1)).kind, 'takeover');
      clock += ABANDONED - 20_000;
      const notYet = (await Promise.all(sweepers.map((s) => s.runOnce()))).flat();
      assert.ok(!notYet.some((s) => s.requestId === 'taken-over'), 'the attempt 280 s ago is not abandoned');
      clock += 30_000;
      const now = (await Promise.all(sweepers.map((s) => s.runOnce()))).flat();
      assert.ok(now.some((s) => s.requestId === 'taken-over'));
      await ledgerOk(stores[0], a, 15);
    } finally {
      await close();
    }
  });
}

describe('issuance: abandoned issuance reservations (sweeper)', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  scenario('Redis', async () => {
    const conns = [new Redis(redis.url), new Redis(redis.url)];
    const prefix = `t${randomBytes(4).toString('hex')}:`;
    const stores = conns.map((c) => new RedisIssuanceStore(c, prefix)) as [RedisIssuanceStore, RedisIssuanceStore];
    return {
      stores,
      close: async () => {
        // The index is left empty: every entry was removed by its owner or the sweeper.
        assert.equal(await conns[0]!.zcard(`${prefix}{issuance}:pending`), 0);
        for (const c of conns) c.disconnect();
      },
    };
  });

  scenario('in-process store', async () => {
    const store = new MemoryIssuanceStore();
    return { stores: [store, store], close: async () => {} };
  });

  it('over HTTP: a request stalled past the abandonment time is given back by the module\'s sweeper, its answer withheld (503 request_expired), and a retry is charged once', async () => {
    const keys = await sharedTestKeys();
    const signer = controllableSigner(keys.privateKeys);
    let clock = Date.now();
    const proxy = await startIssuanceProxy({ redisUrl: redis.url, overrides: { now: () => clock, signer } });
    try {
      const key = await createAccount(proxy.url);
      await adminGrant(proxy.url, ADMIN_TOKEN, key, 5);
      const account = await accountRef(proxy.url, key);
      const credit = keyOf(keys.entries, 'credit');
      const body = encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: randomBlindedMsg() });
      const send = () =>
        fetch(`${proxy.url}/token-request`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST, 'idempotency-key': 'stalled' }, body });
      let release!: () => void;
      signer.gate = new Promise<void>((r) => (release = r));
      const inFlight = send();
      const store = proxy.issuanceStore!;
      for (let i = 0; (await store.balance(account)) !== 4; i++) {
        assert.ok(i < 200, 'the request was not debited');
        await new Promise((r) => setTimeout(r, 10));
      }
      const sweeper = (proxy.modules.find((m) => m.role === 'issuance') as unknown as { sweeper: ReservationSweeper }).sweeper;
      assert.deepEqual(await sweeper.runOnce(), [], 'a request in progress is not swept');
      clock += proxy.config.issuance.abandonedAfterMs + 1;
      assert.equal((await sweeper.runOnce()).length, 1);
      await ledgerOk(store, account, 5);
      signer.gate = undefined;
      release();
      const late = await inFlight;
      assert.equal(late.status, 503);
      assert.equal(((await late.json()) as { error: { code: string } }).error.code, 'request_expired');
      await ledgerOk(store, account, 5);
      const retry = await send();
      assert.equal(retry.status, 200);
      assert.equal((await send()).headers.get('idempotent-replayed'), 'true');
      await ledgerOk(store, account, 4);
    } finally {
      await proxy.stop();
    }
  });
});

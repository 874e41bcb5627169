/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  decodeBatchTokenResponse,
  decodeTokenResponse,
  encodeBatchTokenRequest,
  encodeTokenRequest,
  MEDIA_TYPE_BATCH_REQUEST,
  MEDIA_TYPE_TOKEN_REQUEST,
  TOKEN_TYPE_BLIND_RSA,
  type KeyEntry,
} from '@llmtor/protocol';
import { Cluster, Redis } from 'ioredis';
import { adminGrant, createAccount, getAccount } from '../../src/dev/issuanceClient.js';
import type { ReservationSweeper } from '../../src/issuance/reservationSweeper.js';
import { checkJournal } from '../../src/ledger/journal.js';
import { hashSlot, RedisRedemptionStore } from '../../src/redemption/redisStore.js';
import { accountRef, ADMIN_TOKEN, blindSignatureValid, keyOf, randomBlindedMsg, sharedTestKeys, startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';
import { startRedisCluster, startRedisSentinel, startRedisTls, type ClusterHandle, type SentinelHandle, type TlsRedisHandle } from '../support/redisTopologies.js';
import { paidSessionEvent, postEvent, refundEvent } from '../support/stripeEvents.js';
import { controllableSigner, type ControllableSigner } from '../support/testSigner.js';

const SECRET = `whsec_${randomBytes(16).toString('hex')}`;

async function issue(url: string, accountKey: string, key: KeyEntry, n: number, id?: string) {
  const msgs = Array.from({ length: n }, () => randomBlindedMsg());
  const reqs = msgs.map((m) => ({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: key.truncatedId, blindedMsg: m }));
  const batch = n > 1;
  const res = await fetch(`${url}/token-request`, {
    method: 'POST',
    headers: { authorization: `Bearer ${accountKey}`, 'content-type': batch ? MEDIA_TYPE_BATCH_REQUEST : MEDIA_TYPE_TOKEN_REQUEST, ...(id ? { 'idempotency-key': id } : {}) },
    body: batch ? encodeBatchTokenRequest(reqs) : encodeTokenRequest(reqs[0]!),
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) return { status: res.status, valid: 0 };
  const sigs = batch ? decodeBatchTokenResponse(bytes).map((r) => r?.blindSig) : [decodeTokenResponse(bytes).blindSig];
  return { status: res.status, valid: sigs.filter((s, i) => s && blindSignatureValid(key, msgs[i]!, s)).length };
}

/** Keys per master: proves the data is spread over the cluster (so a cross-slot script would have failed). */
/**
 * /readyz's status once it is 200, or the last one after `ms`. A Cluster client that has just
 * connected may still be learning the slots: an orchestrator polls readiness, and so does this.
 */
async function readyWithin(url: string, ms = 15_000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const status = (await fetch(`${url}/readyz`)).status;
    if (status === 200 || Date.now() > deadline) return status;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function keysPerNode(nodes: string[], pattern: string): Promise<number[]> {
  return Promise.all(
    nodes.map(async (n) => {
      const r = new Redis({ host: '127.0.0.1', port: Number(n.split(':')[1]), lazyConnect: true });
      try {
        await r.connect();
        return (await r.keys(pattern)).length;
      } finally {
        r.disconnect();
      }
    }),
  );
}

describe('issuance: Redis Cluster (3 masters on loopback)', function () {
  this.timeout(90_000);
  let cluster: ClusterHandle;
  let proxy: TestProxy;
  let signer: ControllableSigner;
  let clock = Date.now();

  before(async () => {
    cluster = await startRedisCluster(3);
    const keys = await sharedTestKeys();
    signer = controllableSigner(keys.privateKeys);
    proxy = await startIssuanceProxy({
      env: { ISSUANCE_REDIS_CLUSTER_NODES: cluster.nodes.join(',') },
      config: { issuance: { requestsPerMinute: 1000 }, stripe: { secretKey: 'sk_test_unused', webhookSecret: SECRET, apiBase: 'http://127.0.0.1:9' } },
      overrides: { now: () => clock, signer },
    });
  });
  after(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  it('the cluster refuses a script whose keys are in different slots (what the hash tags avoid)', async () => {
    const c = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })));
    try {
      await assert.rejects(c.eval("return redis.call('GET', KEYS[2])", 2, 'llmtor:{a:one}:acct', 'llmtor:{a:two}:acct'), /CROSSSLOT|slot/i);
      assert.equal(await c.eval("return redis.call('GET', KEYS[2])", 2, 'llmtor:{a:one}:acct', 'llmtor:{a:one}:journal'), null);
    } finally {
      await c.quit();
    }
  });

  it('runs every issuance Lua script through the Redis store: accounts, grants, payment, refund, issuance (single, batch, replay, failure, abuse quota), rate limits and the sweeper', async () => {
    assert.equal(proxy.issuanceStore!.kind, 'redis');
    assert.equal(await readyWithin(proxy.url), 200);
    const credit = keyOf(proxy.keys2.entries, 'credit');
    const accounts: string[] = [];
    for (let i = 0; i < 6; i++) {
      // Several accounts, so their hash tags land on different masters.
      const key = await createAccount(proxy.url);
      assert.equal(await adminGrant(proxy.url, ADMIN_TOKEN, key, 10), 10);
      assert.deepEqual(await issue(proxy.url, key, credit, 1, `one-${i}`), { status: 200, valid: 1 });
      accounts.push(key);
    }
    const key = accounts[0]!;
    const account = await accountRef(proxy.url, key);
    const store = proxy.issuanceStore!;

    // Stripe: payment (credit + event dedup + payment-intent index), then a partial refund.
    const session = `cs_test_${randomBytes(8).toString('hex')}`;
    const pi = `pi_${randomBytes(8).toString('hex')}`;
    await store.recordCheckout(account, { sessionId: session, packId: 'small', credits: 500, amount: 500, currency: 'eur', createdAt: clock, status: 'pending' });
    const paid = paidSessionEvent({ id: session, account, pi });
    assert.equal((await postEvent(proxy.url, SECRET, paid)).body.outcome, 'credited');
    assert.equal((await postEvent(proxy.url, SECRET, paid)).body.outcome, 'duplicate_event');
    assert.equal((await postEvent(proxy.url, SECRET, refundEvent(pi, 500, 100))).body.outcome, 'reversed');
    assert.equal((await getAccount(proxy.url, key)).balance, 9 + 500 - 100);

    // Issuance: a batch, a replay, a failed signing (abort), a partly failed batch.
    assert.deepEqual(await issue(proxy.url, key, credit, 5, 'batch'), { status: 200, valid: 5 });
    const body = encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: randomBlindedMsg() });
    const send = () => fetch(`${proxy.url}/token-request`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST, 'idempotency-key': 'replayed' }, body });
    const first = await send();
    const again = await send();
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), Buffer.from(await first.arrayBuffer()));
    signer.fail = () => true;
    assert.equal((await issue(proxy.url, key, credit, 1, 'fails')).status, 503);
    signer.fail = (i) => i === 0;
    assert.deepEqual(await issue(proxy.url, key, credit, 3, 'partial'), { status: 200, valid: 2 });
    signer.fail = () => false;
    // Abuse tokens: permanent once, transient with its quota.
    const perm = keyOf(proxy.keys2.entries, 'permanent');
    assert.equal((await issue(proxy.url, key, perm, 1)).status, 200);
    assert.equal((await issue(proxy.url, key, perm, 1)).status, 403);
    assert.equal((await issue(proxy.url, key, keyOf(proxy.keys2.entries, 'transient'), 1)).status, 200);

    // A reservation whose pod died: the sweeper gives it back.
    await store.reserveIssuance(account, { requestId: 'dead-pod', bodyHash: 'x', purpose: 'credit', epoch: '', count: 4, quotaLimit: 0, abuseRequires: 'none', now: clock, ttlMs: 86_400_000, takeoverMs: 30_000 });
    clock += proxy.config.issuance.abandonedAfterMs + 1;
    const sweeper = (proxy.modules.find((m) => m.role === 'issuance') as unknown as { sweeper: ReservationSweeper }).sweeper;
    assert.deepEqual((await sweeper.runOnce()).map((s) => [s.requestId, s.count]), [['dead-pod', 4]]);

    const balance = 9 + 500 - 100 - 5 - 1 - 2;
    assert.equal((await getAccount(proxy.url, key)).balance, balance);
    assert.deepEqual(checkJournal(await store.journal(account), balance).problems, []);
    const types: string[] = (await store.journal(account)).map((e) => e.type);
    for (const t of ['grant', 'issue', 'purchase', 'stripe_refund', 'issue_refund']) assert.ok(types.includes(t), `journal has ${t}`);

    // The data really is spread over the masters, each account's keys on one of them.
    const spread = await keysPerNode(cluster.nodes, 'llmtor:{a:*}:acct');
    assert.equal(spread.reduce((a, b) => a + b, 0), 6);
    assert.ok(spread.filter((n) => n > 0).length >= 2, `accounts on more than one master: ${spread.join(',')}`);
  });

  it('the redemption store\'s scripts (a hash tag per token bucket, pseudonym and answer) run on the same cluster', async () => {
    const c = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { scaleReads: 'master' });
    try {
      const store = new RedisRedemptionStore(c, 'llmtor:rdm:', 5_000);
      const now = Date.now();
      const ids = Array.from({ length: 3 }, () => randomBytes(32).toString('hex'));
      const pseudonym = { permanent: randomBytes(32).toString('hex'), transient: randomBytes(32).toString('hex') };
      const claim = (spentIds: string[], binding: string) =>
        store.claim({ spentIds, expiresAt: spentIds.map(() => now + 60_000), binding, now, leaseMs: 30_000, pseudonym, rateLimit: { limit: 100, windowMs: 60_000 } });
      assert.deepEqual(await claim(ids, 'b1'), { kind: 'claimed' });
      assert.equal((await claim(ids, 'b1')).kind, 'in_progress');
      assert.equal((await claim(ids, 'b2')).kind, 'conflict');
      assert.equal(await store.finish(ids, ids.map(() => now + 60_000), 'b1', Buffer.from('cached answer'), 60_000), true);
      // The entry: 8 bytes of the hash in the bucket of its prefix, which expires at the end of the token key's last day.
      const at = store.spentLocation(ids[0]!, now + 60_000);
      assert.equal(at.field.length, 8);
      assert.equal((await c.hgetBuffer(at.key, at.field))?.length, 9, "'d' + 8 bytes of the binding");
      const dayEnd = Math.ceil((now + 60_000) / 86_400_000) * 86_400_000;
      assert.ok(Math.abs(Date.now() + (await c.pttl(at.key)) - dayEnd) < 5_000, 'bucket expires at the end of the expiry day');
      const done = await claim(ids, 'b1');
      assert.equal(done.kind === 'done' && done.cached?.toString(), 'cached answer');
      const more = [randomBytes(32).toString('hex')];
      assert.equal((await claim(more, 'b3')).kind, 'claimed');
      await store.release(more, [now + 60_000], 'b3', 'free');
      assert.equal((await claim(more, 'b4')).kind, 'claimed');
      await store.blacklistAdd({ kind: 'transient', pseudonym: pseudonym.transient });
      assert.equal((await claim([randomBytes(32).toString('hex')], 'b5')).kind, 'blacklisted');
      // Listing scans every master: a plain SCAN on a cluster client reaches one random node.
      for (let i = 0; i < 8; i++) assert.deepEqual((await store.blacklistList()).map((e) => e.pseudonym), [pseudonym.transient]);
      assert.equal(await store.blacklistRemove('transient', pseudonym.transient), true);
      assert.deepEqual(await store.blacklistList(), []);
      assert.equal(await store.flag(pseudonym.permanent, 60_000), 1);
      assert.deepEqual(await store.flagged(10), [{ pseudonym: pseudonym.permanent, flags: 1 }]);
    } finally {
      await c.quit();
    }
  });

  it('durable claims on a Cluster: slots are computed as Redis does (WAIT goes to the node of the token\'s bucket); with no replica to confirm it, the claim is undone', async () => {
    const c = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })), { scaleReads: 'master' });
    try {
      assert.equal(hashSlot('llmtor:rdm:s:{0a1f}:20500'), Number(await c.cluster('KEYSLOT', 'llmtor:rdm:s:{0a1f}:20500')));
      assert.equal(hashSlot('plain-key'), Number(await c.cluster('KEYSLOT', 'plain-key')));
      const store = new RedisRedemptionStore(c, 'llmtor:rdm:', 5_000, { replicas: 1, timeoutMs: 200 });
      const id = randomBytes(32).toString('hex');
      const now = Date.now();
      const claim = (binding: string) => store.claim({ spentIds: [id], expiresAt: [now + 60_000], binding, now, leaseMs: 30_000 });
      const t0 = Date.now();
      assert.deepEqual(await claim('b1'), { kind: 'unconfirmed', released: false });
      assert.ok(Date.now() - t0 >= 2 * 200, 'waited for a replica (claim and undo)');
      // Undone on the primary: another request may claim the token (and is refused the same way).
      const at = store.spentLocation(id, now + 60_000);
      assert.equal(await c.hexists(at.key, at.field), 0);
      assert.equal((await claim('b2')).kind, 'unconfirmed');
    } finally {
      await c.quit();
    }
  });
});

describe('issuance: Redis Sentinel (master and sentinel with passwords)', function () {
  this.timeout(60_000);
  let sentinel: SentinelHandle;
  const masterPassword = randomBytes(12).toString('hex');
  const sentinelPassword = randomBytes(12).toString('hex');
  before(async () => {
    sentinel = await startRedisSentinel({ masterPassword, sentinelPassword });
  });
  after(async () => {
    await sentinel?.stop();
  });

  it('finds the master through the Sentinel and keeps the accounts there', async () => {
    const proxy = await startIssuanceProxy({
      env: { REDIS_SENTINELS: sentinel.sentinel, REDIS_SENTINEL_NAME: sentinel.masterName, REDIS_SENTINEL_PASSWORD: sentinelPassword, REDIS_PASSWORD: masterPassword },
    });
    const master = new Redis({ port: sentinel.masterPort, password: masterPassword, lazyConnect: true });
    try {
      assert.equal(proxy.issuanceStore!.kind, 'redis');
      const key = await createAccount(proxy.url);
      await adminGrant(proxy.url, ADMIN_TOKEN, key, 3);
      assert.deepEqual(await issue(proxy.url, key, keyOf(proxy.keys2.entries, 'credit'), 2, 'via-sentinel'), { status: 200, valid: 2 });
      assert.equal((await getAccount(proxy.url, key)).balance, 1);
      await master.connect();
      const account = await accountRef(proxy.url, key);
      assert.equal(await master.hget(`llmtor:{a:${account}}:acct`, 'balance'), '1');
    } finally {
      master.disconnect();
      await proxy.stop();
    }
  });
});

describe('issuance: Redis over TLS with a private CA', function () {
  this.timeout(60_000);
  let tls: TlsRedisHandle;
  before(async () => {
    tls = await startRedisTls();
  });
  after(async () => {
    await tls?.stop();
  });

  it('connects with rediss:// and REDIS_TLS_CA_FILE; without the CA it is not ready; an unreadable CA file stops the start', async () => {
    const proxy = await startIssuanceProxy({ env: { REDIS_URL: tls.url, REDIS_TLS_CA_FILE: tls.caFile } });
    try {
      const key = await createAccount(proxy.url);
      assert.equal(await adminGrant(proxy.url, ADMIN_TOKEN, key, 2), 2);
      assert.equal((await fetch(`${proxy.url}/readyz`)).status, 200);
    } finally {
      await proxy.stop();
    }
    const untrusting = await startIssuanceProxy({ env: { REDIS_URL: tls.url } });
    try {
      const r = await fetch(`${untrusting.url}/readyz`);
      assert.equal(r.status, 503);
      assert.equal(((await r.json()) as { checks: Record<string, boolean> }).checks.issuance_store, false);
    } finally {
      await untrusting.stop();
    }
    await assert.rejects(startIssuanceProxy({ env: { REDIS_URL: tls.url, REDIS_TLS_CA_FILE: `${tls.caFile}.missing` } }), /redis\.issuance\.tlsCaFile .*cannot read .*ENOENT/);
  });
});

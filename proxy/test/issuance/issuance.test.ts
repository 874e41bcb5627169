/// <reference types="mocha" />
import assert from 'node:assert/strict';
import {
  decodeBatchTokenResponse,
  encodeBatchTokenRequest,
  encodeTokenRequest,
  epochBounds,
  epochOf,
  keyEntry,
  keyMetadata,
  MEDIA_TYPE_BATCH_REQUEST,
  MEDIA_TYPE_BATCH_RESPONSE,
  MEDIA_TYPE_TOKEN_REQUEST,
  ProtocolError,
  TOKEN_TYPE_BLIND_RSA,
  type KeyEntry,
  type TokenRequest,
  NativeTokenClient as TokenClient,
} from '@llmtor/protocol';
import { BlindSigner, generateSigningKey } from '@llmtor/protocol/server';
import { randomBytes, type KeyObject } from 'node:crypto';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { adminGrant, blindRequests, createAccount, getAccount, postBatch, type HttpError } from '../../src/dev/issuanceClient.js';
import { issuanceBodyHash } from '../../src/issuance/parseIssuanceRequest.js';
import { checkJournal } from '../../src/ledger/journal.js';
import { accountRef, ADMIN_TOKEN, keyOf, randomBlindedMsg, recordPaidPurchase, sharedTestKeys, StaticKeySource, startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';

const DAY = 86_400_000;

/** A signer on the test keys that can be told to fail (all, or some items). */
function controllableSigner(privateKeys: Map<string, KeyObject>) {
  const signers = new Map([...privateKeys].map(([id, k]) => [id, new BlindSigner(k)]));
  const s = {
    fail: (_i: number): boolean => false,
    delayMs: 0,
    async signBatch(keyId: string, msgs: readonly Uint8Array[]) {
      if (s.delayMs) await new Promise((r) => setTimeout(r, s.delayMs));
      return msgs.map((m, i) => (s.fail(i) ? new ProtocolError('signing_failure', 'injected fault') : signers.get(keyId)!.sign(m)));
    },
  };
  return s;
}

function single(key: KeyEntry, msg = randomBlindedMsg()): Uint8Array {
  return encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: key.truncatedId, blindedMsg: msg });
}

function reqs(key: KeyEntry, n: number): TokenRequest[] {
  return Array.from({ length: n }, () => ({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: key.truncatedId, blindedMsg: randomBlindedMsg() }));
}

async function issue(url: string, accountKey: string, body: Uint8Array, o: { type?: string; id?: string; auth?: string } = {}) {
  const headers: Record<string, string> = { 'content-type': o.type ?? MEDIA_TYPE_TOKEN_REQUEST };
  if (o.auth !== '') headers.authorization = o.auth ?? `Bearer ${accountKey}`;
  if (o.id) headers['idempotency-key'] = o.id;
  const res = await fetch(`${url}/token-request`, { method: 'POST', headers, body });
  const bytes = new Uint8Array(await res.arrayBuffer());
  let error: { code: string; balance?: number; [k: string]: unknown } | undefined;
  if (!res.ok) error = (JSON.parse(Buffer.from(bytes).toString()) as { error: typeof error }).error;
  return { status: res.status, bytes, error, headers: res.headers };
}

describe('issuance: issuance', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let proxy: TestProxy;
  let signer: ReturnType<typeof controllableSigner>;
  let clock = Date.now();
  let nextTransient: { entry: KeyEntry; key: KeyObject };

  before(async () => {
    redis = await startRedis();
    const keys = await sharedTestKeys();
    // The transient key of next month, so the test can move into the next epoch.
    const next = epochOf(new Date(epochBounds(epochOf(new Date())).end.getTime() + DAY));
    const { start, end } = epochBounds(next);
    const pk = await generateSigningKey();
    const entry = keyEntry(keyMetadata(pk, { purpose: 'transient', epoch: next, notBefore: start.toISOString(), issuanceEnd: end.toISOString(), redemptionEnd: new Date(end.getTime() + 7 * DAY).toISOString() }));
    nextTransient = { entry, key: pk };
    const privateKeys = new Map([...keys.privateKeys, [entry.meta.keyId, pk]]);
    signer = controllableSigner(privateKeys);
    proxy = await startIssuanceProxy({
      redisUrl: redis.url,
      config: { issuance: { maxBatchSize: 50, transientReissuesPerEpoch: 2, pendingTakeoverMs: 5_000 }, accounts: { authFailuresPerIpPerMinute: 1000, accountCreationsPerIpPerMinute: 100 } },
      overrides: { now: () => clock, signer, keySource: new StaticKeySource(async () => ({ entries: [...keys.entries, entry], privateKeys })) },
    });
  });
  beforeEach(() => {
    clock = Date.now();
    signer.fail = () => false;
    signer.delayMs = 0;
  });
  after(async () => {
    await proxy.stop();
    await redis.stop();
  });

  async function funded(credits: number) {
    const key = await createAccount(proxy.url);
    if (credits > 0) await adminGrant(proxy.url, ADMIN_TOKEN, key, credits);
    return { key, account: await accountRef(proxy.url, key) };
  }
  /** An account with a paid purchase (abuse tokens need one). */
  async function paid(credits: number) {
    const key = await createAccount(proxy.url);
    const account = await accountRef(proxy.url, key);
    const purchase = await recordPaidPurchase(proxy.issuanceStore!, account, credits);
    return { key, account, purchase };
  }
  const credit = () => keyOf(proxy.keys2.entries, 'credit');

  async function ledgerOk(account: string, balance: number) {
    assert.equal(await proxy.issuanceStore!.balance(account), balance);
    assert.deepEqual(checkJournal(await proxy.issuanceStore!.journal(account), balance).problems, []);
  }

  it('a retry with the same Idempotency-Key and body returns the same signatures without a second debit, and they finalize', async () => {
    const { key, account } = await funded(10);
    const client = await TokenClient.forKey(credit().meta.publicKey);
    const { requests, pending } = await blindRequests(client, proxy.config.issuerName, 5);
    const first = await postBatch(proxy.url, key, requests, 'batch-1');
    const again = await postBatch(proxy.url, key, requests, 'batch-1');
    assert.deepEqual(again, first);
    await ledgerOk(account, 5);
    const resp = decodeBatchTokenResponse(again);
    for (let i = 0; i < 5; i++) assert.equal((await client.finalize(pending[i]!, resp[i]!)).length, 354);
  });

  it('the same Idempotency-Key with a different body is a 422 and debits nothing', async () => {
    const { key, account } = await funded(10);
    assert.equal((await issue(proxy.url, key, single(credit()), { id: 'k1' })).status, 200);
    const r = await issue(proxy.url, key, single(credit()), { id: 'k1' });
    assert.equal(r.status, 422);
    assert.equal(r.error!.code, 'idempotency_key_reused');
    await ledgerOk(account, 9);
  });

  it('concurrent requests with one Idempotency-Key debit once', async () => {
    const { key, account } = await funded(10);
    signer.delayMs = 100;
    const body = single(credit());
    const rs = await Promise.all(Array.from({ length: 20 }, () => issue(proxy.url, key, body, { id: 'same' })));
    assert.ok(rs.every((r) => r.status === 200 || r.status === 409), rs.map((r) => r.status).join(','));
    assert.ok(rs.filter((r) => r.status === 409).every((r) => r.headers.get('retry-after') === '1'));
    await ledgerOk(account, 9);
    signer.delayMs = 0;
    const after = await issue(proxy.url, key, body, { id: 'same' });
    assert.equal(after.status, 200);
    assert.equal(after.headers.get('idempotent-replayed'), 'true');
  });

  it('a request left pending by a pod that died is taken over by a retry without a second debit', async () => {
    const { key, account } = await funded(3);
    const body = single(credit());
    await proxy.issuanceStore!.reserveIssuance(account, {
      requestId: 'orphan', bodyHash: issuanceBodyHash('single', body), purpose: 'credit', epoch: '', count: 1, quotaLimit: 0, abuseRequires: 'purchase', now: clock, ttlMs: DAY, takeoverMs: 5_000,
    });
    assert.equal((await issue(proxy.url, key, body, { id: 'orphan' })).status, 409);
    clock += 6_000;
    const r = await issue(proxy.url, key, body, { id: 'orphan' });
    assert.equal(r.status, 200);
    await ledgerOk(account, 2);
  });

  it('when signing fails after the debit the credit comes back (journaled) and the request can be retried', async () => {
    const { key, account } = await funded(2);
    signer.fail = () => true;
    const body = single(credit());
    const r = await issue(proxy.url, key, body, { id: 'fails' });
    assert.equal(r.status, 503);
    assert.equal(r.error!.code, 'signing_failed');
    await ledgerOk(account, 2);
    const types = (await proxy.issuanceStore!.journal(account)).map((e) => e.type);
    assert.deepEqual(types, ['grant', 'issue', 'issue_refund']);
    signer.fail = () => false;
    assert.equal((await issue(proxy.url, key, body, { id: 'fails' })).status, 200);
    await ledgerOk(account, 1);
  });

  it('a batch where some signatures fail returns them absent and debits only the signed ones', async () => {
    const { key, account } = await funded(10);
    signer.fail = (i) => i % 2 === 1;
    const bytes = await postBatch(proxy.url, key, reqs(credit(), 6), 'partial');
    const resp = decodeBatchTokenResponse(bytes);
    assert.deepEqual(resp.map((x) => x !== null), [true, false, true, false, true, false]);
    await ledgerOk(account, 7);
  });

  it('abuse tokens only for an account with a paid purchase: an unpaid or admin-granted account gets 402 purchase_required and keeps its quota', async () => {
    const perm = keyOf(proxy.keys2.entries, 'permanent');
    const tr = keyOf(proxy.keys2.entries, 'transient');
    for (const credits of [0, 50]) {
      const { key, account } = await funded(credits);
      for (const k of [perm, tr]) {
        const r = await issue(proxy.url, key, single(k));
        assert.equal(r.status, 402);
        assert.equal(r.error!.code, 'purchase_required');
        assert.equal(r.error!.purpose, k.meta.purpose);
        assert.match(r.error!.message as string, /paid purchase.*POST \/v1\/purchases/);
        assert.doesNotMatch(r.error!.message as string, /admin grant/);
      }
      const view = await getAccount(proxy.url, key);
      assert.equal(view.abuse_tokens.permanent.issued, 0);
      assert.equal(view.abuse_tokens.transient.issued, 0);
      await ledgerOk(account, credits);
      // Credit tokens need no purchase: they cost a credit each.
      if (credits > 0) assert.equal((await issue(proxy.url, key, single(credit()))).status, 200);
      // Once a purchase is paid, the same account gets them.
      await recordPaidPurchase(proxy.issuanceStore!, account, 10);
      assert.equal((await issue(proxy.url, key, single(perm))).status, 200);
      assert.equal((await issue(proxy.url, key, single(tr))).status, 200);
    }
  });

  it('a purchase refunded in full no longer counts for abuse tokens', async () => {
    const { key, account, purchase } = await paid(10);
    const r = await proxy.issuanceStore!.applyReversal(account, { sessionId: purchase.sessionId, eventId: 'evt_full_refund', kind: 'refund', targetCredits: 10, now: Date.now(), eventTtlMs: DAY });
    assert.equal(r.outcome, 'reversed');
    const refused = await issue(proxy.url, key, single(keyOf(proxy.keys2.entries, 'permanent')));
    assert.equal(refused.status, 402);
    assert.equal(refused.error!.code, 'purchase_required');
  });

  it('admin grants count for abuse tokens only when the operator says so (issuance.grantsCountAsPurchase), and the check can be turned off', async () => {
    const keys = await sharedTestKeys();
    for (const [issuance, granted, none, redisUrl] of [
      [{ grantsCountAsPurchase: true }, 200, 402, redis.url],
      [{ abuseTokensRequirePurchase: false }, 200, 200, redis.url],
      // The in-process store applies the same rule.
      [{}, 402, 402, undefined],
    ] as const) {
      const other = await startIssuanceProxy({ ...(redisUrl ? { redisUrl } : {}), config: { issuance }, overrides: { keySource: new StaticKeySource(async () => keys) } });
      try {
        const perm = keyOf(other.keys2.entries, 'permanent');
        const g = await createAccount(other.url);
        await adminGrant(other.url, ADMIN_TOKEN, g, 1);
        assert.equal((await issue(other.url, g, single(perm))).status, granted);
        const n = await issue(other.url, await createAccount(other.url), single(perm));
        assert.equal(n.status, none);
        if (none === 402 && granted === 200) assert.match(n.error!.message as string, /paid purchase or an admin grant/);
        if (!redisUrl) {
          await recordPaidPurchase(other.issuanceStore!, await accountRef(other.url, g), 1);
          assert.equal((await issue(other.url, g, single(perm))).status, 200);
        }
      } finally {
        await other.stop();
      }
    }
  });

  it('the permanent abuse token is issued once per account, ever', async () => {
    const { key } = await paid(1);
    const perm = keyOf(proxy.keys2.entries, 'permanent');
    assert.equal((await issue(proxy.url, key, encodeBatchTokenRequest(reqs(perm, 2)), { type: MEDIA_TYPE_BATCH_REQUEST })).status, 403);
    assert.equal((await issue(proxy.url, key, single(perm))).status, 200);
    const again = await issue(proxy.url, key, single(perm));
    assert.equal(again.status, 403);
    assert.equal(again.error!.code, 'abuse_token_quota_exhausted');
    clock += 400 * DAY;
    assert.equal((await issue(proxy.url, key, single(perm))).status, 403);
    clock = Date.now();
    assert.equal((await getAccount(proxy.url, key)).abuse_tokens.permanent.issued, 1);
  });

  it('a failed permanent-token signing gives the quota back', async () => {
    const { key } = await paid(1);
    signer.fail = () => true;
    assert.equal((await issue(proxy.url, key, single(keyOf(proxy.keys2.entries, 'permanent')))).status, 503);
    signer.fail = () => false;
    assert.equal((await issue(proxy.url, key, single(keyOf(proxy.keys2.entries, 'permanent')))).status, 200);
  });

  it('the transient abuse token is issued once per epoch plus the configured re-issues, and again in the next epoch', async () => {
    const { key } = await paid(1);
    const tr = keyOf(proxy.keys2.entries, 'transient');
    for (let i = 0; i < 3; i++) assert.equal((await issue(proxy.url, key, single(tr))).status, 200);
    const fourth = await issue(proxy.url, key, single(tr));
    assert.equal(fourth.status, 403);
    assert.equal(fourth.error!.limit, 3);
    const view = await getAccount(proxy.url, key);
    assert.deepEqual(view.abuse_tokens.transient, { epoch: epochOf(new Date()), issued: 3, limit: 3 });
    // Next month (past the 2-minute key grace): this month's key no longer issues, next month's does, with a fresh quota.
    clock = epochBounds(nextTransient.entry.meta.epoch!).start.getTime() + 121_000;
    assert.equal((await issue(proxy.url, key, single(tr))).status, 422);
    assert.equal((await issue(proxy.url, key, single(nextTransient.entry))).status, 200);
  });

  it('a key still signs for a short grace after its issuance end (request in flight at a rotation), then 422 unknown_key', async () => {
    const { key, account } = await funded(2);
    const c = credit();
    clock = c.issuanceEnd + 60_000; // default keyGraceMs is 120 s
    assert.equal((await issue(proxy.url, key, single(c))).status, 200);
    clock = c.issuanceEnd + 121_000;
    const late = await issue(proxy.url, key, single(c));
    assert.equal(late.status, 422);
    assert.equal(late.error!.code, 'unknown_key');
    await ledgerOk(account, 1);
  });

  it('answers each client mistake with its 4xx and debits nothing', async () => {
    const { key, account } = await funded(5);
    const c = credit();
    assert.equal((await issue(proxy.url, key, single(c), { auth: '' })).status, 401);
    assert.equal((await issue(proxy.url, key, single(c), { auth: 'Bearer 0000 0000 0000 0000 0000 0000 0000 0000 0000 0000' })).status, 401);
    assert.equal((await issue(proxy.url, key, single(c), { type: 'application/octet-stream' })).status, 415);
    assert.equal((await issue(proxy.url, key, single(c).subarray(0, 100))).status, 422);
    const unknown = await issue(proxy.url, key, encodeTokenRequest({ tokenType: 2, truncatedTokenKeyId: (c.truncatedId + 1) % 256, blindedMsg: randomBlindedMsg() }));
    assert.ok([422].includes(unknown.status));
    const tooBig = await issue(proxy.url, key, encodeBatchTokenRequest(reqs(c, 51)), { type: MEDIA_TYPE_BATCH_REQUEST });
    assert.equal(tooBig.status, 422);
    const mixed = await issue(proxy.url, key, encodeBatchTokenRequest([...reqs(c, 1), ...reqs(keyOf(proxy.keys2.entries, 'permanent'), 1)]), { type: MEDIA_TYPE_BATCH_REQUEST });
    assert.equal(mixed.error!.code, 'mixed_keys');
    const huge = new Uint8Array(256).fill(0xff);
    const outOfRange = await issue(proxy.url, key, single(c, huge));
    assert.equal(outOfRange.status, 422);
    assert.equal((await issue(proxy.url, key, single(c), { id: 'spaces are not allowed' })).status, 422);
    const poor = await issue(proxy.url, key, encodeBatchTokenRequest(reqs(c, 6)), { type: MEDIA_TYPE_BATCH_REQUEST });
    assert.equal(poor.status, 402);
    assert.equal(poor.error!.balance, 5);
    await ledgerOk(account, 5);
    const ok = await issue(proxy.url, key, encodeBatchTokenRequest(reqs(c, 5)), { type: MEDIA_TYPE_BATCH_REQUEST });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('content-type'), MEDIA_TYPE_BATCH_RESPONSE);
  });
});

describe('issuance: rate limits', function () {
  this.timeout(60_000);
  it('limits issuance per account with 429 and Retry-After', async () => {
    const proxy = await startIssuanceProxy({ config: { issuance: { requestsPerMinute: 3 } } });
    try {
      const key = await createAccount(proxy.url);
      await adminGrant(proxy.url, ADMIN_TOKEN, key, 10);
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 5; i++) {
        const r = await issue(proxy.url, key, single(keyOf(proxy.keys2.entries, 'credit')));
        statuses.push(r.status);
        if (r.status === 429) retryAfter = r.headers.get('retry-after');
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      assert.match(retryAfter ?? '', /^\d+$/);
      assert.equal((await getAccount(proxy.url, key)).balance, 7);
    } finally {
      await proxy.stop();
    }
  });

  it('limits failed account-key attempts per client address, also for the right key afterwards', async () => {
    const proxy = await startIssuanceProxy({ config: { accounts: { authFailuresPerIpPerMinute: 5 } } });
    try {
      const key = await createAccount(proxy.url);
      const wrong = '1111 2222 3333 4444 5555 6666 7777 8888 9999 0000';
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await fetch(`${proxy.url}/v1/account`, { headers: { authorization: `Bearer ${wrong}` } })).status);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
      await assert.rejects(getAccount(proxy.url, key), (e: HttpError) => e.status === 429);
    } finally {
      await proxy.stop();
    }
  });

  it('over the global budget of failed attempts, an address that failed gets no more attempts (one that did not still gets one)', async () => {
    const proxy = await startIssuanceProxy({ config: { trustProxy: true, accounts: { authFailuresGlobalPerMinute: 4 } } });
    try {
      const attempt = async (ip: string) => (await fetch(`${proxy.url}/v1/account`, { headers: { authorization: 'Bearer 12', 'x-forwarded-for': ip } })).status;
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push(await attempt(`10.0.0.${i}`));
      // Budget used up: the same addresses again, then a new one twice.
      for (let i = 0; i < 2; i++) statuses.push(await attempt(`10.0.0.${i}`));
      statuses.push(await attempt('10.0.0.9'), await attempt('10.0.0.9'));
      assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429, 401, 429]);
    } finally {
      await proxy.stop();
    }
  });

  /** A syntactically valid account key that no account has. */
  const randomKey = () => Array.from(randomBytes(40), (b) => String(b % 10)).join('');

  it('D4: a flood of wrong keys from many addresses does not lock out a user who has the right key', async () => {
    const proxy = await startIssuanceProxy({ config: { trustProxy: true, accounts: { authFailuresGlobalPerMinute: 50, authFailuresPerIpPerMinute: 30 } } });
    try {
      const key = await createAccount(proxy.url);
      await adminGrant(proxy.url, ADMIN_TOKEN, key, 1);
      const as = (ip: string, k: string, path = '/v1/account') => fetch(`${proxy.url}${path}`, { headers: { authorization: `Bearer ${k}`, 'x-forwarded-for': ip } });
      // 10 addresses × 10 wrong keys: twice the global budget.
      const flood = await Promise.all(Array.from({ length: 100 }, (_, i) => as(`10.9.${i % 10}.1`, randomKey()).then((r) => r.status)));
      assert.ok(flood.includes(429), 'the flood is limited');
      assert.ok(flood.every((s) => s === 401 || s === 429));
      // A user with the right key, from an address that did not take part, on both account routes.
      assert.equal((await as('10.1.1.1', key)).status, 200);
      const issued = await fetch(`${proxy.url}/token-request`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': '10.1.1.1', 'content-type': MEDIA_TYPE_TOKEN_REQUEST },
        body: single(keyOf(proxy.keys2.entries, 'credit')),
      });
      assert.equal(issued.status, 200);
      // The flooding addresses stay limited.
      assert.equal((await as('10.9.0.1', randomKey())).status, 429);
    } finally {
      await proxy.stop();
    }
  });

  it('D5: a burst of concurrent wrong keys from one address is cut at the per-address limit; concurrent requests with the right key share one check', async () => {
    // On Redis: the race needs a lookup that really waits (the in-process store answers within the same turn).
    const redis = await startRedis();
    const proxy = await startIssuanceProxy({ redisUrl: redis.url, config: { accounts: { authFailuresPerIpPerMinute: 30, authFailuresGlobalPerMinute: 1_000_000 } } });
    try {
      const key = await createAccount(proxy.url);
      const right = await Promise.all(Array.from({ length: 200 }, () => fetch(`${proxy.url}/v1/account`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status)));
      assert.deepEqual([...new Set(right)], [200]);
      const burst = await Promise.all(Array.from({ length: 300 }, () => fetch(`${proxy.url}/v1/account`, { headers: { authorization: `Bearer ${randomKey()}` } }).then((r) => r.status)));
      const checked = burst.filter((s) => s === 401).length;
      assert.equal(checked, 30, `${checked} wrong keys were checked against a limit of 30`);
      assert.equal(burst.filter((s) => s === 429).length, 270);
    } finally {
      await proxy.stop();
      await redis.stop();
    }
  });
});

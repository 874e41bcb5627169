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
import type { KeyObject } from 'node:crypto';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { adminGrant, blindRequests, createAccount, getAccount, postBatch, type HttpError } from '../../src/dev/identityClient.js';
import { issuanceBodyHash } from '../../src/issuance/parseIssuanceRequest.js';
import { checkJournal } from '../../src/ledger/journal.js';
import { accountRef, ADMIN_TOKEN, keyOf, randomBlindedMsg, sharedTestKeys, StaticKeySource, startIdentityProxy, type TestProxy } from '../support/identityHarness.js';

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

describe('identity: issuance', function () {
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
    proxy = await startIdentityProxy({
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
  const credit = () => keyOf(proxy.keys2.entries, 'credit');

  async function ledgerOk(account: string, balance: number) {
    assert.equal(await proxy.identityStore!.balance(account), balance);
    assert.deepEqual(checkJournal(await proxy.identityStore!.journal(account), balance).problems, []);
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
    await proxy.identityStore!.reserveIssuance(account, {
      requestId: 'orphan', bodyHash: issuanceBodyHash('single', body), purpose: 'credit', epoch: '', count: 1, quotaLimit: 0, now: clock, ttlMs: DAY, takeoverMs: 5_000,
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
    const types = (await proxy.identityStore!.journal(account)).map((e) => e.type);
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

  it('the permanent abuse token is issued once per account, ever', async () => {
    const { key } = await funded(0);
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
    const { key } = await funded(0);
    signer.fail = () => true;
    assert.equal((await issue(proxy.url, key, single(keyOf(proxy.keys2.entries, 'permanent')))).status, 503);
    signer.fail = () => false;
    assert.equal((await issue(proxy.url, key, single(keyOf(proxy.keys2.entries, 'permanent')))).status, 200);
  });

  it('the transient abuse token is issued once per epoch plus the configured re-issues, and again in the next epoch', async () => {
    const { key } = await funded(0);
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

describe('identity: rate limits', function () {
  this.timeout(60_000);
  it('limits issuance per account with 429 and Retry-After', async () => {
    const proxy = await startIdentityProxy({ config: { issuance: { requestsPerMinute: 3 } } });
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
    const proxy = await startIdentityProxy({ config: { accounts: { authFailuresPerIpPerMinute: 5 } } });
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

  it('limits failed attempts globally across addresses', async () => {
    const proxy = await startIdentityProxy({ config: { trustProxy: true, accounts: { authFailuresGlobalPerMinute: 4 } } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        statuses.push((await fetch(`${proxy.url}/v1/account`, { headers: { authorization: 'Bearer 12', 'x-forwarded-for': `10.0.0.${i}` } })).status);
      }
      assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429]);
    } finally {
      await proxy.stop();
    }
  });
});

/// <reference types="mocha" />
/**
 * The issuance side under a stalled Redis (SIGSTOP/SIGCONT of a real redis-server): an
 * issuance request waits for the store and then completes with one debit. It never answers
 * "nothing was debited" on a guess (issue 13, D1: the redemption side's 503 was such a guess).
 */
import assert from 'node:assert/strict';
import { encodeTokenRequest, MEDIA_TYPE_TOKEN_REQUEST, TOKEN_TYPE_BLIND_RSA } from '@llmtor/protocol';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { adminGrant, createAccount } from '../../src/dev/issuanceClient.js';
import { accountRef, ADMIN_TOKEN, keyOf, randomBlindedMsg, startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';

describe('issuance: issuance under a stalled Redis', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let proxy: TestProxy;
  before(async () => {
    redis = await startRedis({ forceSpawn: true });
    proxy = await startIssuanceProxy({ redisUrl: redis.url });
  });
  after(async () => {
    await proxy?.stop();
    await redis?.stop();
  });

  it('waits for the store and debits once when it resumes', async () => {
    const key = await createAccount(proxy.url);
    await adminGrant(proxy.url, ADMIN_TOKEN, key, 5);
    const account = await accountRef(proxy.url, key);
    const credit = keyOf(proxy.keys2.entries, 'credit');
    redis.signal('SIGSTOP');
    let answered = false;
    let pending: Promise<Response>;
    try {
      pending = fetch(`${proxy.url}/token-request`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST, 'idempotency-key': 'stalled' },
        body: encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: randomBlindedMsg() }),
      });
      void pending.then(() => (answered = true));
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(answered, false, 'no answer while the store is stalled');
    } finally {
      redis.signal('SIGCONT');
    }
    const res = await pending;
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(await proxy.issuanceStore!.balance(account), 4);
  });
});

describe('issuance: the account store unreachable', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let proxy: TestProxy;
  before(async () => {
    redis = await startRedis({ forceSpawn: true });
    proxy = await startIssuanceProxy({ redisUrl: redis.url });
  });
  after(async () => {
    await proxy?.stop();
  });

  it('answers 503 store_unavailable in the JSON error shape (not a 500), saying a repeat is never charged twice', async () => {
    const key = await createAccount(proxy.url);
    await adminGrant(proxy.url, ADMIN_TOKEN, key, 5);
    const credit = keyOf(proxy.keys2.entries, 'credit');
    await redis.stop();
    const issue = await fetch(`${proxy.url}/token-request`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST, 'idempotency-key': 'store-down' },
      body: encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: randomBlindedMsg() }),
    });
    const body = (await issue.json()) as { error: { code: string; message: string } };
    assert.equal(issue.status, 503, JSON.stringify(body));
    assert.equal(body.error.code, 'store_unavailable');
    assert.match(body.error.message, /never charged twice/);
    assert.ok(issue.headers.get('retry-after'));
    const account = await fetch(`${proxy.url}/v1/account`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(account.status, 503);
    assert.equal(((await account.json()) as { error: { code: string } }).error.code, 'store_unavailable');
  });
});

/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { ISSUER_DIRECTORY_PATH, MEDIA_TYPE_ISSUER_DIRECTORY, MEDIA_TYPE_TOKEN_REQUEST, encodeTokenRequest, parseIssuerDirectory, TOKEN_TYPE_BLIND_RSA } from '@llmtor/protocol';
import { BlindSigner } from '@llmtor/protocol/server';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { adminGrant, createAccount, getAccount } from '../../src/dev/issuanceClient.js';
import { ADMIN_TOKEN, keyOf, randomBlindedMsg, sharedTestKeys, startIssuanceProxy } from '../support/issuanceHarness.js';

describe('issuance: service skeleton', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  before(async () => {
    redis = await startRedis({ forceSpawn: true });
  });
  after(async () => {
    await redis.stop();
  });

  it('is ready only while Redis answers, and alive throughout', async () => {
    const proxy = await startIssuanceProxy({ redisUrl: redis.url });
    try {
      const ready = async () => (await fetch(`${proxy.url}/readyz`)).status;
      assert.equal((await fetch(`${proxy.url}/healthz`)).status, 200);
      assert.equal(await ready(), 200);
      await redis.kill();
      assert.equal(await ready(), 503);
      const body = (await (await fetch(`${proxy.url}/readyz`)).json()) as { checks: Record<string, boolean> };
      assert.equal(body.checks.issuance_store, false);
      assert.equal(body.checks.keys, true);
      assert.equal((await fetch(`${proxy.url}/healthz`)).status, 200);
      await redis.restart();
      const deadline = Date.now() + 10_000;
      while ((await ready()) !== 200) {
        if (Date.now() > deadline) assert.fail('not ready again after Redis came back');
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await proxy.stop();
    }
  });

  it('serves the issuer directory with its media type, caching headers and ETag revalidation', async () => {
    const proxy = await startIssuanceProxy({ config: { publicBaseUrl: 'https://issuer.example' } });
    try {
      const res = await fetch(`${proxy.url}${ISSUER_DIRECTORY_PATH}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), MEDIA_TYPE_ISSUER_DIRECTORY);
      assert.match(res.headers.get('cache-control') ?? '', /max-age=300/);
      const etag = res.headers.get('etag')!;
      const dir = parseIssuerDirectory(await res.text());
      assert.equal(dir['issuer-request-uri'], 'https://issuer.example/token-request');
      const keys = await sharedTestKeys();
      assert.deepEqual(new Set(dir['token-keys'].map((k) => k['token-key'])), new Set(keys.entries.map((e) => e.meta.publicKey)));
      // node:http here; directoryConditional.test.ts covers fetch(), which adds Cache-Control: no-cache.
      const status = await new Promise<number>((resolve, reject) => {
        const r = request(`${proxy.url}${ISSUER_DIRECTORY_PATH}`, { headers: { 'if-none-match': etag } }, (x) => (x.resume(), resolve(x.statusCode ?? 0)));
        r.on('error', reject);
        r.end();
      });
      assert.equal(status, 304);
    } finally {
      await proxy.stop();
    }
  });

  it('exposes Prometheus metrics including issued tokens', async () => {
    const proxy = await startIssuanceProxy();
    try {
      const key = await createAccount(proxy.url);
      await adminGrant(proxy.url, ADMIN_TOKEN, key, 1);
      const credit = keyOf(proxy.keys2.entries, 'credit');
      await fetch(`${proxy.url}/token-request`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST },
        body: encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: randomBlindedMsg() }),
      });
      const text = await (await fetch(`${proxy.url}/metrics`)).text();
      assert.match(text, /llmtor_tokens_issued_total\{purpose="credit"\} 1/);
      assert.match(text, /llmtor_http_requests_total\{method="POST",route="\/token-request",status="200"\} 1/);
      assert.ok(!text.includes(key.replace(/ /g, '')) && !text.includes(key));
    } finally {
      await proxy.stop();
    }
  });

  it('finishes in-flight requests on graceful shutdown and refuses new ones', async () => {
    const keys = await sharedTestKeys();
    const signers = new Map([...keys.privateKeys].map(([id, k]) => [id, new BlindSigner(k)]));
    const slowSigner = {
      async signBatch(keyId: string, msgs: readonly Uint8Array[]) {
        await new Promise((r) => setTimeout(r, 700));
        return msgs.map((m) => signers.get(keyId)!.sign(m));
      },
    };
    const proxy = await startIssuanceProxy({ overrides: { signer: slowSigner } });
    const key = await createAccount(proxy.url);
    await adminGrant(proxy.url, ADMIN_TOKEN, key, 1);
    const credit = keyOf(proxy.keys2.entries, 'credit');
    const inflight = fetch(`${proxy.url}/token-request`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST },
      body: encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: randomBlindedMsg() }),
    });
    await new Promise((r) => setTimeout(r, 200));
    const stopped = proxy.stop(5_000);
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal((await res.arrayBuffer()).byteLength, 256);
    await stopped;
    const refused = await new Promise<string>((resolve) => {
      const r = request(`${proxy.url}/healthz`, (x) => resolve(String(x.statusCode)));
      r.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      r.end();
    });
    assert.equal(refused, 'ECONNREFUSED');
  });

  it('creates accounts with a 40-digit grouped key shown once, and reports balance and history to the holder', async () => {
    const proxy = await startIssuanceProxy();
    try {
      const res = await fetch(`${proxy.url}/v1/accounts`, { method: 'POST' });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const { account_key } = (await res.json()) as { account_key: string };
      assert.match(account_key, /^\d{4}( \d{4}){9}$/);
      const view = await getAccount(proxy.url, account_key);
      assert.equal(view.balance, 0);
      assert.match(view.account_ref, /^acct_[0-9a-f]{32}$/);
      // Spaces are optional when the key is sent back.
      assert.equal((await getAccount(proxy.url, account_key.replace(/ /g, ''))).balance, 0);
    } finally {
      await proxy.stop();
    }
  });

  it('admin grants need the admin credential, not an account key, and are off without one', async () => {
    const proxy = await startIssuanceProxy();
    const off = await startIssuanceProxy({ config: { adminToken: undefined } });
    try {
      const key = await createAccount(proxy.url);
      const grant = (url: string, auth: string) =>
        fetch(`${url}/v1/admin/grants`, { method: 'POST', headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' }, body: JSON.stringify({ account_key: key, credits: 5 }) });
      assert.equal((await grant(proxy.url, key.replace(/ /g, ''))).status, 401);
      assert.equal((await grant(proxy.url, `${ADMIN_TOKEN}x`)).status, 401);
      assert.equal((await grant(off.url, ADMIN_TOKEN)).status, 404);
      assert.equal((await grant(proxy.url, ADMIN_TOKEN)).status, 201);
      assert.equal((await getAccount(proxy.url, key)).balance, 5);
    } finally {
      await proxy.stop();
      await off.stop();
    }
  });
});

/// <reference types="mocha" />
/**
 * Bad input never crashes the server and never costs credit: random bodies,
 * media types and headers on every issuance endpoint get a 4xx (never a 5xx),
 * and the account's balance and journal are unchanged.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeBatchTokenRequest, encodeTokenRequest, MEDIA_TYPE_BATCH_REQUEST, MEDIA_TYPE_TOKEN_REQUEST, TOKEN_TYPE_BLIND_RSA } from '@llmtor/protocol';
import Stripe from 'stripe';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { adminGrant, createAccount } from '../../src/dev/issuanceClient.js';
import { checkJournal } from '../../src/ledger/journal.js';
import { accountRef, ADMIN_TOKEN, keyOf, startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';

const PATHS = ['/token-request', '/v1/accounts', '/v1/account', '/v1/purchases', '/v1/admin/grants', '/v1/stripe/webhook'];
const SECRET = 'whsec_fuzz';

describe('issuance: fuzzed requests', function () {
  this.timeout(120_000);
  let redis: RedisHandle;
  let proxy: TestProxy;
  let key: string;
  let account: string;

  before(async () => {
    redis = await startRedis();
    proxy = await startIssuanceProxy({
      redisUrl: redis.url,
      config: { issuance: { maxBatchSize: 20 }, accounts: { authFailuresPerIpPerMinute: 1_000_000, authFailuresGlobalPerMinute: 1_000_000, accountCreationsPerIpPerMinute: 1_000_000 }, stripe: { secretKey: 'sk_test_x', webhookSecret: SECRET, apiBase: 'http://127.0.0.1:9' } },
    });
    key = await createAccount(proxy.url);
    account = await accountRef(proxy.url, key);
    await adminGrant(proxy.url, ADMIN_TOKEN, key, 3);
  });
  after(async () => {
    await proxy.stop();
    await redis.stop();
  });

  async function unchanged() {
    assert.equal(await proxy.issuanceStore!.balance(account), 3);
    assert.deepEqual(checkJournal(await proxy.issuanceStore!.journal(account), 3).problems, []);
  }

  it('random bytes, media types and headers on issuance get 4xx and cost nothing', async () => {
    const credit = keyOf(proxy.keys2.entries, 'credit');
    const modulus = new Uint8Array(Buffer.from(credit.publicKey.export({ format: 'jwk' }).n!, 'base64url'));
    const validish = fc.oneof(
      fc.uint8Array({ maxLength: 600 }),
      // Near-valid: right framing, but a wrong type, an unknown key or a message not below the modulus (never a valid request).
      fc.record({ type: fc.constantFrom(2, 2, 1, 0xffff), kid: fc.constantFrom(credit.truncatedId, (credit.truncatedId + 7) % 256), high: fc.boolean() }).map((r) => {
        const msg = r.high ? new Uint8Array(256).fill(0xff) : modulus;
        const b = encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: r.kid, blindedMsg: msg });
        b[0] = r.type >> 8;
        b[1] = r.type & 0xff;
        return b;
      }),
      fc.integer({ min: 4, max: 40 }).map((n) => encodeBatchTokenRequest(Array.from({ length: n }, () => ({ tokenType: 2, truncatedTokenKeyId: credit.truncatedId, blindedMsg: new Uint8Array(256).fill(0xff) })))),
    );
    await fc.assert(
      fc.asyncProperty(
        validish,
        fc.constantFrom(MEDIA_TYPE_TOKEN_REQUEST, MEDIA_TYPE_BATCH_REQUEST, 'application/json', 'text/plain', ''),
        fc.option(fc.string({ maxLength: 140 }), { nil: undefined }),
        fc.constantFrom('good', 'bad', 'none', 'garbage'),
        async (body, type, idem, auth) => {
          const headers: Record<string, string> = {};
          if (type) headers['content-type'] = type;
          if (idem !== undefined && /^[\x20-\x7e]*$/.test(idem) && idem.trim() === idem) headers['idempotency-key'] = idem;
          if (auth === 'good') headers.authorization = `Bearer ${key}`;
          if (auth === 'bad') headers.authorization = 'Bearer 1234 5678 1234 5678 1234 5678 1234 5678 1234 5678';
          if (auth === 'garbage') headers.authorization = 'PrivateToken token=abc';
          const res = await fetch(`${proxy.url}/token-request`, { method: 'POST', headers, body });
          await res.arrayBuffer();
          assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
        },
      ),
      { numRuns: 300 },
    );
    await unchanged();
  });

  it('random JSON and text on the JSON endpoints and the webhook get 4xx and cost nothing', async () => {
    const body = fc.oneof(
      fc.json(),
      fc.string({ maxLength: 300 }),
      fc.record({ pack: fc.oneof(fc.string(), fc.integer(), fc.constant(null)), account_key: fc.string(), credits: fc.oneof(fc.integer(), fc.double(), fc.string()) }).map((o) => JSON.stringify(o)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS.slice(2)),
        body,
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
        fc.constantFrom('account', 'admin-wrong', 'none'),
        fc.constantFrom('none', 'garbage', 'wrong-secret'),
        async (path, text, type, auth, sig) => {
          const headers: Record<string, string> = { 'content-type': type };
          if (auth === 'account') headers.authorization = `Bearer ${key}`;
          if (auth === 'admin-wrong') headers.authorization = `Bearer ${ADMIN_TOKEN.slice(1)}`;
          if (sig === 'garbage') headers['stripe-signature'] = 't=1,v1=00';
          if (sig === 'wrong-secret') headers['stripe-signature'] = Stripe.webhooks.generateTestHeaderString({ payload: text, secret: 'whsec_other' });
          const res = await fetch(`${proxy.url}${path}`, { method: path === '/v1/account' ? 'GET' : 'POST', headers, ...(path === '/v1/account' ? {} : { body: text }) });
          await res.arrayBuffer();
          if (path === '/v1/account' && auth === 'account') assert.equal(res.status, 200);
          else assert.ok(res.status >= 400 && res.status < 500, `${path}: status ${res.status}`);
        },
      ),
      { numRuns: 300 },
    );
    await unchanged();
  });

  it('signed webhook events with random contents never credit anything they should not', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          id: fc.string({ minLength: 1, maxLength: 30 }),
          type: fc.constantFrom('checkout.session.completed', 'checkout.session.async_payment_succeeded', 'charge.refunded', 'charge.dispute.created', 'x'),
          data: fc.record({ object: fc.oneof(fc.object(), fc.record({ id: fc.string(), mode: fc.constantFrom('payment', 'setup'), payment_status: fc.constantFrom('paid', 'unpaid'), client_reference_id: fc.constantFrom(account, 'acct_0', null) })) }),
        }),
        async (ev) => {
          const payload = JSON.stringify({ object: 'event', ...ev });
          const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET });
          const res = await fetch(`${proxy.url}/v1/stripe/webhook`, { method: 'POST', headers: { 'stripe-signature': header, 'content-type': 'application/json' }, body: payload });
          await res.arrayBuffer();
          assert.equal(res.status, 200);
        },
      ),
      { numRuns: 150 },
    );
    await unchanged();
  });
});

/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAccount, getAccount } from '../../src/dev/issuanceClient.js';
import { startStripeMock, type StripeMock } from '../../src/dev/stripeMock.js';
import { startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';

/** Forwards to stripe-mock and records what the proxy sent (stripe-mock itself keeps nothing). */
async function recordingForwarder(target: StripeMock) {
  const seen: { path: string; body: URLSearchParams; idempotencyKey: string | undefined; auth: string | undefined }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ path: req.url ?? '', body: new URLSearchParams(body.toString()), idempotencyKey: req.headers['idempotency-key'] as string | undefined, auth: req.headers.authorization });
      const up = request({ host: '127.0.0.1', port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('issuance: purchases through Stripe Checkout (stripe-mock)', function () {
  this.timeout(120_000);
  let mock: StripeMock;
  let fwd: Awaited<ReturnType<typeof recordingForwarder>>;
  let proxy: TestProxy;
  before(async () => {
    mock = await startStripeMock();
    fwd = await recordingForwarder(mock);
    proxy = await startIssuanceProxy({ config: { stripe: { secretKey: 'sk_test_123', webhookSecret: 'whsec_test', apiBase: fwd.url } } });
  });
  after(async () => {
    await proxy?.stop();
    await fwd?.close();
    await mock?.stop();
  });

  async function purchase(key: string, body: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${proxy.url}/v1/purchases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { checkout_url?: string; session_id?: string; error?: { code: string } } };
  }

  it('creates a payment-mode Checkout Session for the pack with the opaque account reference and an idempotency key', async () => {
    const key = await createAccount(proxy.url);
    const r = await purchase(key, { pack: 'small' }, { 'idempotency-key': 'buy-1' });
    assert.equal(r.status, 201);
    assert.match(r.body.checkout_url!, /^https:\/\//);
    assert.match(r.body.session_id!, /^cs_/);
    const call = fwd.seen.at(-1)!;
    assert.equal(call.path, '/v1/checkout/sessions');
    assert.equal(call.body.get('mode'), 'payment');
    const view = await getAccount(proxy.url, key);
    assert.equal(call.body.get('client_reference_id'), view.account_ref);
    assert.ok(!call.body.toString().includes(key.replace(/ /g, '')), 'the account key never reaches Stripe');
    assert.equal(call.body.get('line_items[0][price_data][unit_amount]'), '500');
    assert.equal(call.body.get('line_items[0][price_data][currency]'), 'eur');
    assert.match(call.idempotencyKey ?? '', /^llmtor-checkout-/);
    assert.deepEqual(
      view.purchases.map((p) => [p.session_id, p.status, p.credits]),
      [[r.body.session_id, 'pending', 500]],
    );
    assert.equal(view.balance, 0, 'nothing is credited before the webhook');
    // The same client retry sends the same Stripe idempotency key.
    await purchase(key, { pack: 'small' }, { 'idempotency-key': 'buy-1' });
    assert.equal(fwd.seen.at(-1)!.idempotencyKey, call.idempotencyKey);
  });

  it('refuses unknown packs, bad bodies and missing account keys with 4xx and without calling Stripe', async () => {
    const key = await createAccount(proxy.url);
    const before = fwd.seen.length;
    assert.equal((await purchase(key, { pack: 'nope' })).status, 422);
    assert.equal((await purchase(key, { pack: 'small', extra: 1 })).status, 422);
    assert.equal((await purchase(key, ['small'])).status, 400);
    assert.equal((await purchase('1234', { pack: 'small' })).status, 401);
    assert.equal(fwd.seen.length, before);
  });
});

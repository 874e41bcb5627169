/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { adminGrant, createAccount } from '../../src/dev/issuanceClient.js';
import { checkJournal } from '../../src/ledger/journal.js';
import { accountRef, ADMIN_TOKEN, startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';

const SECRET = `whsec_${randomBytes(16).toString('hex')}`;

function sessionEvent(type: string, session: { id: string; account: string; paid: boolean; pi?: string }, eventId = `evt_${randomBytes(8).toString('hex')}`) {
  return {
    id: eventId,
    object: 'event',
    type,
    data: {
      object: {
        id: session.id,
        object: 'checkout.session',
        mode: 'payment',
        payment_status: session.paid ? 'paid' : 'unpaid',
        client_reference_id: session.account,
        payment_intent: session.pi ?? null,
      },
    },
  };
}

async function post(url: string, event: object, o: { secret?: string; timestamp?: number; tamper?: boolean; noHeader?: boolean } = {}) {
  const payload = JSON.stringify(event);
  const header = Stripe.webhooks.generateTestHeaderString({ payload, secret: o.secret ?? SECRET, ...(o.timestamp ? { timestamp: o.timestamp } : {}) });
  const body = o.tamper ? payload.replace('"paid"', '"paid" ') : payload;
  const res = await fetch(`${url}/v1/stripe/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(o.noHeader ? {} : { 'stripe-signature': header }) },
    body,
  });
  return { status: res.status, body: (await res.json()) as { outcome?: string; error?: { code: string } } };
}

describe('issuance: Stripe webhooks', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let proxy: TestProxy;
  before(async () => {
    redis = await startRedis();
    proxy = await startIssuanceProxy({ redisUrl: redis.url, config: { stripe: { secretKey: 'sk_test_unused', webhookSecret: SECRET, apiBase: 'http://127.0.0.1:9' } } });
  });
  after(async () => {
    await proxy.stop();
    await redis.stop();
  });

  async function accountWithPurchase(credits = 500, sessions = 1) {
    const key = await createAccount(proxy.url);
    const account = await accountRef(proxy.url, key);
    const ids: string[] = [];
    for (let i = 0; i < sessions; i++) {
      const id = `cs_test_${randomBytes(8).toString('hex')}`;
      ids.push(id);
      await proxy.issuanceStore!.recordCheckout(account, { sessionId: id, packId: 'small', credits, amount: 500, currency: 'eur', createdAt: Date.now(), status: 'pending' });
    }
    return { key, account, ids };
  }

  async function assertLedger(account: string, balance: number) {
    const store = proxy.issuanceStore!;
    assert.equal(await store.balance(account), balance);
    assert.deepEqual(checkJournal(await store.journal(account), balance).problems, []);
  }

  it('the same event delivered ten times at once credits exactly once', async () => {
    const { account, ids } = await accountWithPurchase();
    const ev = sessionEvent('checkout.session.completed', { id: ids[0]!, account, paid: true, pi: 'pi_a1' });
    const results = await Promise.all(Array.from({ length: 10 }, () => post(proxy.url, ev)));
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(results.filter((r) => r.body.outcome === 'credited').length, 1);
    assert.equal(results.filter((r) => r.body.outcome === 'duplicate_event').length, 9);
    await assertLedger(account, 500);
  });

  it('completed and async_payment_succeeded for one session credit once, in either order and concurrently', async () => {
    for (const order of ['completed-first', 'async-first', 'together'] as const) {
      const { account, ids } = await accountWithPurchase();
      const s = { id: ids[0]!, account, paid: true, pi: `pi_${order}` };
      const a = sessionEvent('checkout.session.completed', s);
      const b = sessionEvent('checkout.session.async_payment_succeeded', s);
      if (order === 'completed-first') await post(proxy.url, a).then(() => post(proxy.url, b));
      else if (order === 'async-first') await post(proxy.url, b).then(() => post(proxy.url, a));
      else await Promise.all([post(proxy.url, a), post(proxy.url, b), post(proxy.url, a), post(proxy.url, b)]);
      await assertLedger(account, 500);
    }
  });

  it('an unpaid completed session credits nothing until async_payment_succeeded arrives, even out of order', async () => {
    const { account, ids } = await accountWithPurchase();
    const s = { id: ids[0]!, account, paid: false };
    const r1 = await post(proxy.url, sessionEvent('checkout.session.completed', s));
    assert.equal(r1.body.outcome, 'ignored');
    await assertLedger(account, 0);
    const r2 = await post(proxy.url, sessionEvent('checkout.session.async_payment_succeeded', { ...s, paid: true }));
    assert.equal(r2.body.outcome, 'credited');
    // A late, duplicated "completed" (paid) for the same session changes nothing.
    const r3 = await post(proxy.url, sessionEvent('checkout.session.completed', { ...s, paid: true }));
    assert.equal(r3.body.outcome, 'already_paid');
    await assertLedger(account, 500);
  });

  it('many sessions of one account, events shuffled and duplicated, credit each session once', async () => {
    const { account, ids } = await accountWithPurchase(10, 20);
    const events = ids.flatMap((id, i) => {
      const s = { id, account, paid: true, pi: `pi_many_${i}` };
      const c = sessionEvent('checkout.session.completed', s);
      return [c, c, sessionEvent('checkout.session.async_payment_succeeded', s)];
    });
    events.sort(() => Math.random() - 0.5);
    const results = await Promise.all(events.map((e) => post(proxy.url, e)));
    assert.ok(results.every((r) => r.status === 200));
    assert.equal(results.filter((r) => r.body.outcome === 'credited').length, 20);
    await assertLedger(account, 200);
  });

  it('a forged, tampered, unsigned or stale event is rejected with 400 and changes nothing; a replay is 200 and changes nothing', async () => {
    const { account, ids } = await accountWithPurchase();
    const ev = sessionEvent('checkout.session.completed', { id: ids[0]!, account, paid: true });
    const forged = await post(proxy.url, ev, { secret: 'whsec_wrong' });
    assert.equal(forged.status, 400);
    assert.equal(forged.body.error?.code, 'invalid_signature');
    assert.equal((await post(proxy.url, ev, { tamper: true })).status, 400);
    assert.equal((await post(proxy.url, ev, { noHeader: true })).status, 400);
    const stale = await post(proxy.url, ev, { timestamp: Math.floor(Date.now() / 1000) - 600 });
    assert.equal(stale.status, 400);
    await assertLedger(account, 0);
    assert.equal((await post(proxy.url, ev)).body.outcome, 'credited');
    const replay = await post(proxy.url, ev);
    assert.equal(replay.status, 200);
    assert.equal(replay.body.outcome, 'duplicate_event');
    await assertLedger(account, 500);
  });

  it('events for sessions or accounts that are not ours are acknowledged and change nothing', async () => {
    const { account } = await accountWithPurchase();
    assert.equal((await post(proxy.url, sessionEvent('checkout.session.completed', { id: 'cs_test_other', account, paid: true }))).body.outcome, 'unknown_session');
    assert.equal((await post(proxy.url, sessionEvent('checkout.session.completed', { id: 'cs_test_other', account: 'someone-else', paid: true }))).body.outcome, 'unknown_account');
    assert.equal((await post(proxy.url, { id: 'evt_x', object: 'event', type: 'customer.created', data: { object: {} } })).body.outcome, 'ignored');
    await assertLedger(account, 0);
  });

  it('a refund debits the refunded share from what is unspent, never below zero, and is journaled', async () => {
    const { key, account, ids } = await accountWithPurchase(500);
    await post(proxy.url, sessionEvent('checkout.session.completed', { id: ids[0]!, account, paid: true, pi: 'pi_refund' }));
    const refund = (refunded: number) => ({
      id: `evt_${randomBytes(8).toString('hex')}`,
      object: 'event',
      type: 'charge.refunded',
      data: { object: { id: 'ch_1', object: 'charge', amount: 500, amount_refunded: refunded, payment_intent: 'pi_refund' } },
    });
    const half = refund(250);
    assert.equal((await post(proxy.url, half)).body.outcome, 'reversed');
    assert.equal((await post(proxy.url, half)).body.outcome, 'duplicate_event');
    await assertLedger(account, 250);
    // Spend 200 of the remaining 250 through the issuance debit.
    await proxy.issuanceStore!.reserveIssuance(account, { requestId: 'spend', bodyHash: 'x', purpose: 'credit', epoch: '', count: 200, quotaLimit: 0, abuseRequires: 'none', now: Date.now(), ttlMs: 60_000, takeoverMs: 60_000 });
    await assertLedger(account, 50);
    assert.equal((await post(proxy.url, refund(500))).body.outcome, 'reversed');
    await assertLedger(account, 0);
    const notes = (await proxy.issuanceStore!.journal(account)).filter((e) => e.type === 'stripe_refund').map((e) => e.note);
    assert.deepEqual(notes.map((n) => /owed (\d+), unspent debited (\d+)/.exec(n!)!.slice(1)), [['250', '250'], ['250', '50']]);
    // A later grant is not eaten by the old refund.
    await adminGrant(proxy.url, ADMIN_TOKEN, key, 7);
    await assertLedger(account, 7);
  });

  it('a dispute reverses the whole purchase from the unspent balance', async () => {
    const { account, ids } = await accountWithPurchase(300);
    await post(proxy.url, sessionEvent('checkout.session.completed', { id: ids[0]!, account, paid: true, pi: 'pi_dispute' }));
    const ev = { id: 'evt_dispute_1', object: 'event', type: 'charge.dispute.created', data: { object: { id: 'dp_1', object: 'dispute', amount: 500, payment_intent: 'pi_dispute' } } };
    assert.equal((await post(proxy.url, ev)).body.outcome, 'reversed');
    await assertLedger(account, 0);
    assert.equal((await proxy.issuanceStore!.snapshot(account)).purchases[0]!.reversed, 300);
  });
});

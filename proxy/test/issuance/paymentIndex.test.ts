/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { Redis } from 'ioredis';
import { createAccount } from '../../src/dev/issuanceClient.js';
import { checkJournal } from '../../src/ledger/journal.js';
import type { IssuanceStore } from '../../src/store/issuanceStore.js';
import { applyPayment } from '../../src/store/issuanceScripts.js';
import { RedisIssuanceStore } from '../../src/store/redisIssuanceStore.js';
import { accountRef, startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';
import { paidSessionEvent, postEvent, refundEvent } from '../support/stripeEvents.js';

const SECRET = `whsec_${randomBytes(16).toString('hex')}`;

type Arg = string | number | Buffer;

/** Wraps an object so that some methods are replaced; everything else goes to the real thing. */
function intercept<T extends object>(target: T, replacements: Partial<Record<keyof T, (...args: never[]) => unknown>>): T {
  return new Proxy(target, {
    get(t, p) {
      const r = replacements[p as keyof T];
      if (r) return r;
      const v: unknown = Reflect.get(t, p, t);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

describe('issuance: payment-intent index for refunds and disputes', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let conn: Redis;
  before(async () => {
    redis = await startRedis();
    conn = new Redis(redis.url);
  });
  after(async () => {
    conn.disconnect();
    await redis.stop();
  });

  async function proxyWith(store: IssuanceStore): Promise<TestProxy> {
    return startIssuanceProxy({ config: { stripe: { secretKey: 'sk_test_unused', webhookSecret: SECRET, apiBase: 'http://127.0.0.1:9' } }, overrides: { issuanceStore: store } });
  }

  async function purchase(proxy: TestProxy, store: IssuanceStore) {
    const key = await createAccount(proxy.url);
    const account = await accountRef(proxy.url, key);
    const session = `cs_test_${randomBytes(8).toString('hex')}`;
    await store.recordCheckout(account, { sessionId: session, packId: 'small', credits: 500, amount: 500, currency: 'eur', createdAt: Date.now(), status: 'pending' });
    return { account, session, pi: `pi_${randomBytes(8).toString('hex')}` };
  }

  async function ledgerOk(store: IssuanceStore, account: string, balance: number) {
    assert.equal(await store.balance(account), balance);
    assert.deepEqual(checkJournal(await store.journal(account), balance).problems, []);
  }

  it('a pod that dies right after the credit step leaves the payment findable: the refund that follows is applied, not unknown_payment', async () => {
    // The process "dies" the moment the credit script has run: nothing after it on that path happens.
    let crash = true;
    const dieAfter = async (isCredit: boolean, step: Promise<unknown>) => {
      const out = await step;
      if (crash && isCredit) throw new Error('pod died after the credit step');
      return out;
    };
    const dyingConn = intercept(conn, {
      evalsha: ((sha: string, ...rest: Arg[]) => dieAfter(sha === applyPayment.sha, conn.evalsha(sha, ...(rest as [number, ...Arg[]])))) as never,
      eval: ((src: string, ...rest: Arg[]) => dieAfter(src === applyPayment.source, conn.eval(src, ...(rest as [number, ...Arg[]])))) as never,
    });
    const store = new RedisIssuanceStore(dyingConn);
    const proxy = await proxyWith(store);
    try {
      const { account, session, pi } = await purchase(proxy, store);
      const paid = paidSessionEvent({ id: session, account, pi });
      assert.equal((await postEvent(proxy.url, SECRET, paid)).status, 500);
      await ledgerOk(store, account, 500);
      crash = false;
      const refund = await postEvent(proxy.url, SECRET, refundEvent(pi, 500, 250));
      assert.equal(refund.body.outcome, 'reversed');
      await ledgerOk(store, account, 250);
      // Stripe redelivers the payment event (our answer was a 500): nothing changes.
      assert.equal((await postEvent(proxy.url, SECRET, paid)).body.outcome, 'duplicate_event');
      await ledgerOk(store, account, 250);
    } finally {
      await proxy.stop();
    }
  });

  it('a refund that arrives while its payment is being credited is not consumed: 503 until the credit lands, then the redelivery is applied', async () => {
    // The credit step of the payment waits on a gate, as a slow pod would.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const slowConn = intercept(conn, {
      evalsha: (async (sha: string, ...rest: Arg[]) => {
        if (sha === applyPayment.sha) await gate;
        return conn.evalsha(sha, ...(rest as [number, ...Arg[]]));
      }) as never,
      eval: (async (src: string, ...rest: Arg[]) => {
        if (src === applyPayment.source) await gate;
        return conn.eval(src, ...(rest as [number, ...Arg[]]));
      }) as never,
    });
    const store = new RedisIssuanceStore(slowConn);
    const proxy = await proxyWith(store);
    try {
      const { account, session, pi } = await purchase(proxy, store);
      const payment = postEvent(proxy.url, SECRET, paidSessionEvent({ id: session, account, pi }));
      for (let i = 0; !(await store.lookupPaymentIntent(pi)); i++) {
        assert.ok(i < 300, 'the payment intent is indexed before the credit step runs');
        await new Promise((r) => setTimeout(r, 10));
      }
      const dispute = { id: `evt_${randomBytes(8).toString('hex')}`, object: 'event', type: 'charge.dispute.created', data: { object: { id: 'dp_1', object: 'dispute', payment_intent: pi } } };
      const early = await postEvent(proxy.url, SECRET, dispute);
      assert.equal(early.status, 503);
      assert.equal(early.body.error?.code, 'payment_not_yet_credited');
      open();
      assert.equal((await payment).body.outcome, 'credited');
      await ledgerOk(store, account, 500);
      const redelivered = await postEvent(proxy.url, SECRET, dispute);
      assert.equal(redelivered.body.outcome, 'reversed');
      await ledgerOk(store, account, 0);
      assert.equal((await postEvent(proxy.url, SECRET, dispute)).body.outcome, 'duplicate_event');
    } finally {
      open();
      await proxy.stop();
    }
  });
});

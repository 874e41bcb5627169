/**
 * POST /v1/stripe/webhook. The raw body is verified with the real library
 * (`constructEvent`) before anything else: a missing, forged or stale signature
 * is a 400 and nothing is read from the body. A verified event is applied
 * exactly once (event id and session status checked in the same atomic step
 * as the credit), so redeliveries and replays answer 200 and change nothing.
 */
import Router from '@koa/router';
import type Stripe from 'stripe';
import { isAccountId } from '../accounts/accountKey.js';
import { ApiError } from '../http/apiError.js';
import { readRawBody } from '../http/rawBody.js';
import type { IssuanceContext } from '../issuanceContext.js';
import { counter } from '../metrics.js';
import { classifyEvent, refundTargetCredits } from './webhookEvents.js';

/** Processed-event markers outlive Stripe's 3-day redelivery window. */
const EVENT_TTL_MS = 30 * 86_400_000;

export function webhookRoutes(c: IssuanceContext): Router {
  const router = new Router();
  const processed = counter(c.metrics, 'llmtor_stripe_webhooks_total', 'Stripe webhook events by type and outcome', ['type', 'outcome']);

  router.post('/v1/stripe/webhook', async (ctx) => {
    if (!c.stripe || !c.config.stripe.webhookSecret) throw new ApiError('payments_not_configured', 'this server does not take payments');
    const signature = ctx.get('stripe-signature');
    if (!signature) throw new ApiError('missing_signature', 'Stripe-Signature header is missing');
    const raw = await readRawBody(ctx, 1024 * 1024);
    let event: Stripe.Event;
    try {
      event = c.stripe.webhooks.constructEvent(raw, signature, c.config.stripe.webhookSecret, c.config.stripe.webhookToleranceSeconds, undefined, c.now());
    } catch {
      processed.inc({ type: 'unverified', outcome: 'rejected' });
      c.logger.warn('Stripe webhook with an invalid or stale signature rejected');
      throw new ApiError('invalid_signature', 'signature does not verify or the event is too old');
    }
    const outcome = await applyEvent(c, event);
    processed.inc({ type: event.type, outcome });
    c.logger.info({ eventType: event.type, outcome }, 'Stripe webhook processed');
    if (outcome === 'not_paid') {
      // The payment of this charge is being credited right now (its event is in flight): a non-2xx makes Stripe redeliver this one later.
      throw new ApiError('payment_not_yet_credited', 'the payment of this charge is not credited yet; redeliver later', { headers: { 'Retry-After': '10' } });
    }
    ctx.body = { received: true, outcome };
  });

  return router;
}

async function applyEvent(c: IssuanceContext, event: Stripe.Event): Promise<string> {
  const action = classifyEvent(event);
  const now = c.now();
  switch (action.kind) {
    case 'ignore':
      return 'ignored';
    case 'payment': {
      if (!isAccountId(action.accountId)) return 'unknown_account';
      // Indexes the payment intent (for refunds and disputes) before crediting, on every delivery.
      const r = await c.store.applyPayment(action.accountId, { sessionId: action.sessionId, eventId: event.id, paymentIntent: action.paymentIntent, now, eventTtlMs: EVENT_TTL_MS });
      return r.outcome;
    }
    case 'refund':
    case 'dispute': {
      const where = await c.store.lookupPaymentIntent(action.paymentIntent);
      // Not one of ours (another product on the same Stripe account), or its payment is not recorded: nothing to reverse.
      if (!where) return 'unknown_payment';
      const purchase = (await c.store.snapshot(where.accountId)).purchases.find((p) => p.sessionId === where.sessionId);
      if (!purchase) return 'unknown_session';
      const target = action.kind === 'refund' ? refundTargetCredits(purchase.credits, action.refunded, action.amount) : purchase.credits;
      const r = await c.store.applyReversal(where.accountId, { sessionId: where.sessionId, eventId: event.id, kind: action.kind, targetCredits: target, now, eventTtlMs: EVENT_TTL_MS });
      return r.outcome;
    }
  }
}

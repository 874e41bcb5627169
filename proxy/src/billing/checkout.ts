/**
 * Creating a purchase: a Stripe Checkout Session in payment mode for one credit
 * pack. Stripe sees only the opaque account reference (client_reference_id),
 * never the account key. The pending purchase is recorded before the URL is
 * returned, so the webhook can credit exactly what was sold.
 */
import { createHash, randomUUID } from 'node:crypto';
import type Stripe from 'stripe';
import type { CreditPack } from '../config.js';

export interface CheckoutResult {
  sessionId: string;
  url: string;
}

/** Idempotency key for Stripe: a client retry (same Idempotency-Key header) gets the same session. */
export function checkoutIdempotencyKey(accountId: string, packId: string, clientKey: string | undefined): string {
  if (!clientKey) return `llmtor-checkout-${randomUUID()}`;
  return `llmtor-checkout-${createHash('sha256').update(`${accountId}\n${packId}\n${clientKey}`).digest('hex').slice(0, 48)}`;
}

export async function createCheckoutSession(
  stripe: Stripe,
  o: { pack: CreditPack; accountId: string; successUrl: string; cancelUrl: string; idempotencyKey: string },
): Promise<CheckoutResult> {
  const session = await stripe.checkout.sessions.create(
    {
      mode: 'payment',
      client_reference_id: o.accountId,
      line_items: [{ quantity: 1, price_data: { currency: o.pack.currency, unit_amount: o.pack.amount, product_data: { name: o.pack.name } } }],
      success_url: o.successUrl,
      cancel_url: o.cancelUrl,
      metadata: { llmtor_pack: o.pack.id, llmtor_credits: String(o.pack.credits) },
    },
    { idempotencyKey: o.idempotencyKey },
  );
  if (!session.url) throw new Error('Stripe returned a Checkout Session without a URL');
  return { sessionId: session.id, url: session.url };
}

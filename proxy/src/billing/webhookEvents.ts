/**
 * What a (verified) Stripe event means for the ledger. Pure: the route verifies
 * the signature, this decides, the store applies atomically.
 *
 * Policy:
 * - `checkout.session.completed` credits only when `payment_status` is `paid`;
 *   delayed methods (SEPA, …) credit on `checkout.session.async_payment_succeeded`.
 * - `charge.refunded`: the refunded share of the purchase (rounded up to whole
 *   credits, cumulative over partial refunds) is owed back.
 * - `charge.dispute.created`: the whole purchase is owed back.
 * - What is owed is debited from the unspent balance, never below 0; credits
 *   already turned into tokens cannot be recalled (the tokens are unlinkable),
 *   and the journal records both what was owed and what was debited.
 */
import type Stripe from 'stripe';
import { z } from 'zod';

export type WebhookAction =
  | { kind: 'payment'; accountId: string; sessionId: string; paymentIntent: string }
  | { kind: 'refund'; paymentIntent: string; refunded: number; amount: number }
  | { kind: 'dispute'; paymentIntent: string }
  | { kind: 'ignore'; reason: string };

const idOrObject = z.union([z.string(), z.object({ id: z.string() }).passthrough()]).nullish();
const idOf = (v: z.infer<typeof idOrObject>): string => (typeof v === 'string' ? v : (v?.id ?? ''));

const sessionSchema = z
  .object({ id: z.string().min(1), mode: z.string(), payment_status: z.string(), client_reference_id: z.string().nullish(), payment_intent: idOrObject })
  .passthrough();
const chargeSchema = z.object({ id: z.string(), amount: z.number().int().positive(), amount_refunded: z.number().int().min(0), payment_intent: idOrObject }).passthrough();
const disputeSchema = z.object({ id: z.string(), payment_intent: idOrObject }).passthrough();

export function classifyEvent(event: Stripe.Event): WebhookAction {
  const obj: unknown = (event as { data?: { object?: unknown } }).data?.object;
  switch (event.type) {
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded': {
      const s = sessionSchema.safeParse(obj);
      if (!s.success) return { kind: 'ignore', reason: 'checkout session object does not have the expected fields' };
      if (s.data.mode !== 'payment') return { kind: 'ignore', reason: `checkout session mode ${s.data.mode}` };
      if (s.data.payment_status !== 'paid') return { kind: 'ignore', reason: `payment_status ${s.data.payment_status}: credit waits for async_payment_succeeded` };
      if (!s.data.client_reference_id) return { kind: 'ignore', reason: 'session has no client_reference_id (not an LLM-Tor purchase)' };
      return { kind: 'payment', accountId: s.data.client_reference_id, sessionId: s.data.id, paymentIntent: idOf(s.data.payment_intent) };
    }
    case 'charge.refunded': {
      const c = chargeSchema.safeParse(obj);
      if (!c.success || !idOf(c.data.payment_intent)) return { kind: 'ignore', reason: 'charge without payment_intent' };
      return { kind: 'refund', paymentIntent: idOf(c.data.payment_intent), refunded: c.data.amount_refunded, amount: c.data.amount };
    }
    case 'charge.dispute.created': {
      const d = disputeSchema.safeParse(obj);
      if (!d.success || !idOf(d.data.payment_intent)) return { kind: 'ignore', reason: 'dispute without payment_intent' };
      return { kind: 'dispute', paymentIntent: idOf(d.data.payment_intent) };
    }
    default:
      return { kind: 'ignore', reason: `event type ${event.type} is not used` };
  }
}

/** Credits owed back for a (cumulative) refund of `refunded` out of `amount`: rounded up (the buyer got that money back). */
export function refundTargetCredits(credits: number, refunded: number, amount: number): number {
  if (amount <= 0) return credits;
  return Math.min(credits, Math.ceil((credits * Math.min(refunded, amount)) / amount));
}

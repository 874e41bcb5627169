/** Stripe events signed with the real library (offline), posted to the proxy's webhook. */
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';

export const newEventId = () => `evt_${randomBytes(8).toString('hex')}`;

export function paidSessionEvent(s: { id: string; account: string; pi: string }, eventId = newEventId()) {
  return {
    id: eventId,
    object: 'event',
    type: 'checkout.session.completed',
    data: { object: { id: s.id, object: 'checkout.session', mode: 'payment', payment_status: 'paid', client_reference_id: s.account, payment_intent: s.pi } },
  };
}

export function refundEvent(pi: string, amount: number, refunded: number, eventId = newEventId()) {
  return { id: eventId, object: 'event', type: 'charge.refunded', data: { object: { id: `ch_${pi}`, object: 'charge', amount, amount_refunded: refunded, payment_intent: pi } } };
}

export async function postEvent(url: string, secret: string, event: object): Promise<{ status: number; body: { outcome?: string; error?: { code: string } } }> {
  const payload = JSON.stringify(event);
  const header = Stripe.webhooks.generateTestHeaderString({ payload, secret });
  const res = await fetch(`${url}/v1/stripe/webhook`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body: payload });
  return { status: res.status, body: (await res.json()) as { outcome?: string; error?: { code: string } } };
}

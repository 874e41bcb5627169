/** The Stripe client, pointed at api.stripe.com or at a local stand-in (stripe-mock) through host/port/protocol. */
import Stripe from 'stripe';
import type { ProxyConfig } from '../config.js';

export function createStripe(c: ProxyConfig['stripe']): Stripe | undefined {
  if (!c.secretKey) return undefined;
  const opts: Stripe.StripeConfig = { maxNetworkRetries: 2, timeout: 20_000, telemetry: false };
  if (c.apiBase) {
    const u = new URL(c.apiBase);
    opts.host = u.hostname;
    opts.port = u.port || (u.protocol === 'http:' ? 80 : 443);
    opts.protocol = u.protocol === 'http:' ? 'http' : 'https';
  }
  return new Stripe(c.secretKey, opts);
}

/** POST /v1/purchases { "pack": "<id>" } → { checkout_url, session_id }; GET /v1/packs lists what can be bought. */
import Router from '@koa/router';
import { z } from 'zod';
import { ApiError } from '../http/apiError.js';
import { readJsonObject } from '../http/rawBody.js';
import type { IssuanceContext } from '../issuanceContext.js';
import { checkoutIdempotencyKey, createCheckoutSession } from './checkout.js';

const purchaseBody = z.object({ pack: z.string().min(1).max(40) }).strict();
const IDEMPOTENCY_KEY_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export function purchaseRoutes(c: IssuanceContext): Router {
  const router = new Router();

  router.get('/v1/packs', (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = { packs: c.config.packs.map((p) => ({ id: p.id, credits: p.credits, amount: p.amount, currency: p.currency, name: p.name })) };
  });

  router.post('/v1/purchases', async (ctx) => {
    const accountId = await c.auth.authenticate(ctx);
    const parsed = purchaseBody.safeParse(await readJsonObject(ctx));
    if (!parsed.success) throw new ApiError('invalid_request', 'body must be { "pack": "<pack id>" }', { status: 422 });
    const pack = c.config.packs.find((p) => p.id === parsed.data.pack);
    if (!pack) throw new ApiError('unknown_pack', `no pack ${JSON.stringify(parsed.data.pack)}; see GET /v1/packs`, { details: { packs: c.config.packs.map((p) => p.id) } });
    const clientKey = ctx.get('idempotency-key') || undefined;
    if (clientKey !== undefined && !IDEMPOTENCY_KEY_RE.test(clientKey)) throw new ApiError('invalid_idempotency_key', 'Idempotency-Key must be 1-128 of A-Z a-z 0-9 . _ : -');
    if (!c.stripe) throw new ApiError('payments_not_configured', 'this server does not take payments (no Stripe key configured)');
    let session;
    try {
      session = await createCheckoutSession(c.stripe, {
        pack,
        accountId,
        successUrl: c.config.stripe.successUrl,
        cancelUrl: c.config.stripe.cancelUrl,
        idempotencyKey: checkoutIdempotencyKey(accountId, pack.id, clientKey),
      });
    } catch (e) {
      c.logger.error({ err: (e as Error).message }, 'creating a Stripe Checkout Session failed');
      throw new ApiError('payment_provider_error', 'the payment provider did not answer; try again');
    }
    await c.store.recordCheckout(accountId, {
      sessionId: session.sessionId,
      packId: pack.id,
      credits: pack.credits,
      amount: pack.amount,
      currency: pack.currency,
      createdAt: c.now(),
      status: 'pending',
    });
    ctx.status = 201;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { checkout_url: session.url, session_id: session.sessionId };
  });

  return router;
}

/**
 * POST /v1/accounts — a new account; its key is shown once and never stored.
 * GET  /v1/account  — balance, purchases and abuse-token state of the holder.
 */
import Router from '@koa/router';
import { ACCOUNT_PATH, epochOf, type AccountView } from '@llmtor/protocol';
import { tooManyRequests } from '../http/apiError.js';
import type { IssuanceContext } from '../issuanceContext.js';
import { formatAccountKey, generateAccountKey, hashAccountKey, newAccountId } from './accountKey.js';
import { IpLimiter } from './ipLimiter.js';

export function accountRoutes(c: IssuanceContext): Router {
  const router = new Router();
  const creations = new IpLimiter(c.config.accounts.accountCreationsPerIpPerMinute, 60_000);

  router.post('/v1/accounts', async (ctx) => {
    const now = c.now();
    const limit = creations.hit(ctx.ip || 'unknown', now);
    if (!limit.allowed) throw tooManyRequests('too many accounts created from this address', limit.retryAfterMs);
    for (;;) {
      const digits = generateAccountKey();
      const accountId = newAccountId();
      if (await c.store.createAccount(hashAccountKey(c.pepper, digits), accountId, now)) {
        ctx.status = 201;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = { account_key: formatAccountKey(digits) };
        c.logger.info('account created');
        return;
      }
    }
  });

  router.get(ACCOUNT_PATH, async (ctx) => {
    const accountId = await c.auth.authenticate(ctx);
    const s = await c.store.snapshot(accountId);
    const epoch = epochOf(new Date(c.now()));
    const transientLimit = 1 + c.config.issuance.transientReissuesPerEpoch;
    ctx.set('Cache-Control', 'no-store');
    const body: AccountView = {
      account_ref: accountId,
      balance: s.balance,
      created_at: new Date(s.createdAt).toISOString(),
      purchases: s.purchases.map((p) => ({
        session_id: p.sessionId,
        pack: p.packId,
        credits: p.credits,
        amount: p.amount,
        currency: p.currency,
        status: p.status,
        created_at: new Date(p.createdAt).toISOString(),
        paid_at: p.paidAt ? new Date(p.paidAt).toISOString() : null,
        reversed_credits: p.reversed ?? 0,
      })),
      abuse_tokens: {
        permanent: { issued: s.permanentIssued, limit: 1 },
        transient: { epoch, issued: s.transientIssued[epoch] ?? 0, limit: transientLimit },
      },
    };
    ctx.body = body;
  });

  return router;
}

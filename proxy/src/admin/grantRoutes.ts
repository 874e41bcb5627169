/**
 * POST /v1/admin/grants — credit an account for testing and support, with the
 * admin credential (config adminToken, compared in constant time), never an
 * account key. Journaled like every other balance change.
 */
import { randomUUID } from 'node:crypto';
import { adminTokenMatches, bearerToken } from '../http/adminToken.js';
import Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { hashAccountKey, normalizeAccountKey } from '../accounts/accountKey.js';
import { ApiError } from '../http/apiError.js';
import { readJsonObject } from '../http/rawBody.js';
import type { IssuanceContext } from '../issuanceContext.js';

const grantBody = z
  .object({
    account_key: z.string().min(1).max(120),
    credits: z.number().int().min(1).max(1_000_000),
    reason: z.string().max(200).default('admin grant'),
  })
  .strict();

function requireAdmin(c: IssuanceContext, ctx: Context): void {
  const expected = c.config.adminToken;
  if (!expected) throw new ApiError('not_found', 'admin API is disabled (no ADMIN_TOKEN configured)');
  const presented = bearerToken(ctx.get('authorization'));
  if (!presented || !adminTokenMatches(presented, expected)) {
    throw new ApiError('invalid_admin_token', 'missing or invalid admin credential', { headers: { 'WWW-Authenticate': 'Bearer realm="llmtor-admin"' } });
  }
}

export function grantRoutes(c: IssuanceContext): Router {
  const router = new Router();

  router.post('/v1/admin/grants', async (ctx) => {
    requireAdmin(c, ctx);
    const parsed = grantBody.safeParse(await readJsonObject(ctx));
    if (!parsed.success) throw new ApiError('invalid_request', 'body must be { "account_key": "…", "credits": <int 1..1000000>, "reason"?: "…" }', { status: 422 });
    const digits = normalizeAccountKey(parsed.data.account_key);
    const accountId = digits ? await c.store.accountIdForKeyHash(hashAccountKey(c.pepper, digits)) : undefined;
    if (!accountId) throw new ApiError('unknown_account', 'no account with that key');
    const grantId = `grant_${randomUUID()}`;
    const { balance } = await c.store.grant(accountId, parsed.data.credits, grantId, parsed.data.reason, c.now());
    c.logger.info({ grantId, credits: parsed.data.credits }, 'admin grant');
    ctx.status = 201;
    ctx.body = { grant_id: grantId, credits: parsed.data.credits, balance };
  });

  return router;
}

/**
 * POST <issuerRequestPath> (default /token-request): Privacy Pass issuance,
 * single (`application/private-token-request`) or generic batch
 * (`application/private-token-generic-batch-request`), authenticated with
 * `Authorization: Bearer <account key>`, idempotent with `Idempotency-Key`.
 */
import { randomUUID } from 'node:crypto';
import Router from '@koa/router';
import { ApiError, tooManyRequests } from '../http/apiError.js';
import { readRawBody } from '../http/rawBody.js';
import type { IssuanceContext } from '../issuanceContext.js';
import { issueTokens, type IssuanceDeps } from './issuanceService.js';
import { maxBodyBytes, shapeOfMediaType } from './parseIssuanceRequest.js';

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

export function issuanceRoutes(c: IssuanceContext, deps: IssuanceDeps): Router {
  const router = new Router();
  router.post(c.config.issuerRequestPath, async (ctx) => {
    const shape = shapeOfMediaType(ctx.request.type);
    const accountId = await c.auth.authenticate(ctx);
    const header = ctx.get('idempotency-key');
    if (header && !REQUEST_ID_RE.test(header)) throw new ApiError('invalid_idempotency_key', 'Idempotency-Key must be 1-128 of A-Z a-z 0-9 . _ : -');
    // Without a key the request is still recorded, under an id no retry can name.
    const requestId = header || `auto-${randomUUID()}`;
    const body = await readRawBody(ctx, maxBodyBytes(c.config.issuance.maxBatchSize));
    const limit = await c.store.rateLimit(`iss:${accountId}`, c.config.issuance.requestsPerMinute, 60_000, c.now(), 1);
    if (!limit.allowed) throw tooManyRequests('too many issuance requests for this account', limit.retryAfterMs);
    const result = await issueTokens(deps, accountId, shape, new Uint8Array(body.buffer, body.byteOffset, body.byteLength), requestId);
    ctx.status = 200;
    ctx.type = result.contentType;
    ctx.set('Cache-Control', 'no-store');
    if (result.replayed) ctx.set('Idempotent-Replayed', 'true');
    ctx.body = Buffer.from(result.body.buffer, result.body.byteOffset, result.body.byteLength);
  });
  return router;
}

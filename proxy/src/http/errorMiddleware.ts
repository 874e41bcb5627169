/**
 * Renders ApiError (and anything unexpected) as JSON; records HTTP metrics by
 * route pattern. An unreachable Redis is a 503 store_unavailable; other unexpected errors
 * are logged without request data and answered with a generic 500 (no stack, no internals).
 */
import type { Context, Next } from 'koa';
import type { Logger } from 'pino';
import type { HttpMetrics } from '../metrics.js';
import { isRedisUnreachable } from '../redis/connect.js';
import { ApiError, errorBody } from './apiError.js';

function isJsonBody(ctx: Context): boolean {
  return ctx.body !== null && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body);
}

export function errorMiddleware(logger: Logger, metrics: HttpMetrics) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const start = process.hrtime.bigint();
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = errorBody('not_found', `no route for ${ctx.method} ${ctx.path}`);
      } else if (ctx.status === 405 && !isJsonBody(ctx)) {
        // The routers' allowedMethods() answer these in plain text: same JSON shape as every other error.
        const allow = ctx.response.get('Allow');
        ctx.body = errorBody('method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}${allow ? `; allowed: ${allow}` : ''}`);
        ctx.status = 405;
      } else if (ctx.status === 501 && !isJsonBody(ctx)) {
        ctx.body = errorBody('not_implemented', `the ${ctx.method} method is not supported by this server`);
        ctx.status = 501;
      }
    } catch (e) {
      if (e instanceof ApiError) {
        ctx.status = e.status;
        for (const [k, v] of Object.entries(e.headers)) ctx.set(k, v);
        ctx.body = errorBody(e.code, e.message, e.details);
      } else if (isRedisUnreachable(e)) {
        // Not our bug and not the client's: say so, and what a retry costs (issuance is idempotent per key).
        ctx.status = 503;
        ctx.set('Retry-After', '1');
        ctx.body = errorBody('store_unavailable', 'the account store is unreachable; retry later (a request repeated with the same Idempotency-Key is never charged twice)');
      } else {
        const status = typeof (e as { status?: unknown }).status === 'number' ? (e as { status: number }).status : 500;
        if (status >= 500) {
          logger.error({ err: { name: (e as Error).name, message: (e as Error).message, stack: (e as Error).stack } }, 'unhandled error');
          ctx.status = 500;
          ctx.body = errorBody('internal_error', 'internal error; the request may be retried');
        } else {
          ctx.status = status;
          ctx.body = errorBody('bad_request', (e as Error).message);
        }
      }
    } finally {
      const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.requests.inc({ method: ctx.method, route: String(route), status: String(ctx.status) });
      metrics.duration.observe({ method: ctx.method, route: String(route) }, seconds);
    }
  };
}

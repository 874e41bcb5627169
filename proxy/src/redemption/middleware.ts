/**
 * Cross-cutting work on the chat-completions route, as Koa middleware around the handler:
 *
 *   router.post(path, redemptionMetrics(…), redemptionErrors(…), chatCompletion(…))
 *
 * The handler reports how the request ended in `ctx.state` (see `report`); the errors
 * middleware renders a thrown error and reports its outcome; the metrics middleware, outermost,
 * records the outcome and the time to the last byte whatever happened inside.
 */
import type { Context, Middleware, Next } from 'koa';
import { RedemptionError } from './errors.js';
import { OUTCOME_OF, type Outcome, type RedemptionMetrics } from './metrics.js';
import type { RedemptionRuntime } from './runtime.js';

/** How one redemption ended, for the metrics: written by the handler or the errors middleware. */
export interface RedemptionReport {
  outcome: Outcome;
  stream: boolean;
}

/** The request's report (created by `redemptionMetrics`; a fresh one if the route is mounted without it). */
export function report(ctx: Context): RedemptionReport {
  const state = ctx.state as { redemption?: RedemptionReport };
  return (state.redemption ??= { outcome: 'internal_error', stream: false });
}

export function redemptionMetrics(metrics: RedemptionMetrics): Middleware {
  return async (ctx: Context, next: Next): Promise<void> => {
    const started = performance.now();
    const r = report(ctx);
    try {
      await next();
    } finally {
      metrics.request(r.outcome, r.stream, (performance.now() - started) / 1000);
    }
  };
}

/** Renders what the handler throws (a RedemptionError as its status and JSON body, anything else as a bare 500). */
/** What rendering an error needs: the log (unexpected errors only) and the challenge for 401s. */
type ErrorRendering = Pick<RedemptionRuntime, 'logger' | 'challenge' | 'deps'>;

export function redemptionErrors(runtime: ErrorRendering): Middleware {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
    } catch (e) {
      report(ctx).outcome = respondError(ctx, runtime, e);
    }
  };
}

function respondError(ctx: Context, runtime: ErrorRendering, e: unknown): Outcome {
  let err: RedemptionError;
  let outcome: Outcome;
  if (e instanceof RedemptionError) {
    err = e as RedemptionError;
    outcome = OUTCOME_OF[err.code];
  } else {
    // The class and the stack frames only: a message can quote input (a prompt, a token), a frame cannot.
    const stack = typeof (e as Error)?.stack === 'string' ? (e as Error).stack!.split('\n').filter((l) => /^\s+at /.test(l)).join('\n') : undefined;
    runtime.logger.error({ err: { name: (e as Error)?.name, stack } }, 'redemption: unexpected error');
    err = new RedemptionError('internal_error', 'internal error; nothing was spent if the request did not reach the model');
    outcome = 'internal_error';
  }
  if (ctx.res.headersSent) {
    ctx.res.destroy();
    return outcome;
  }
  ctx.respond = true;
  ctx.status = err.status;
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  // RFC 9110 §15.5.2: every 401 carries a challenge (also abuse_tokens_required, invalid_token for LLMTor-Abuse).
  if (err.status === 401 && !ctx.response.get('www-authenticate')) ctx.set('www-authenticate', runtime.challenge.wwwAuthenticate(runtime.deps.keyring(), runtime.deps.now()));
  ctx.set('cache-control', 'no-store');
  ctx.body = err.toBody();
  return outcome;
}

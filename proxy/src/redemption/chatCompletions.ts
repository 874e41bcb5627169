/**
 * POST /v1/chat/completions on the anonymous side, in three named stages:
 *
 *   admit   (admit.ts)   parse the credentials → read the body (limit from the tokens
 *                        presented) → validate and allowlist → price → verify credit and
 *                        abuse tokens (native RSA)
 *   claim   (claim.ts)   one store call (one Lua script): blacklist, replay / in-progress /
 *                        conflict check, rate limit, claim of all k tokens → a `Claim`
 *   forward (forward.ts) moderation → upstream (JSON, or SSE passed through as it arrives)
 *                        → the claim finished with the encrypted answer cached for retries
 *
 * Nothing here reads the peer address, X-Forwarded-For or any client header
 * other than Authorization and LLMTor-Abuse, and nothing request-specific is
 * logged.
 */
import type { Context } from 'koa';
import { admit } from './admit.js';
import { claim } from './claim.js';
import { RedemptionError } from './errors.js';
import { forward } from './forward.js';
import type { Outcome } from './metrics.js';
import { replay } from './reply.js';
import type { RedemptionRuntime } from './runtime.js';

export async function handleChatCompletion(ctx: Context, rt: RedemptionRuntime): Promise<void> {
  const started = performance.now();
  let outcome: Outcome;
  let stream = false;
  try {
    const r = await redeem(ctx, rt);
    outcome = r.outcome;
    stream = r.stream;
  } catch (e) {
    outcome = respondError(ctx, rt, e);
  }
  rt.metrics.request(outcome, stream, (performance.now() - started) / 1000);
}

function respondError(ctx: Context, rt: RedemptionRuntime, e: unknown): Outcome {
  let err: RedemptionError;
  let outcome: Outcome;
  if (e instanceof RedemptionError) {
    err = e;
    outcome = outcomeOf(e);
  } else {
    // The class and the stack frames only: a message can quote input (a prompt, a token), a frame cannot.
    const stack = typeof (e as Error)?.stack === 'string' ? (e as Error).stack!.split('\n').filter((l) => /^\s+at /.test(l)).join('\n') : undefined;
    rt.logger.error({ err: { name: (e as Error)?.name, stack } }, 'redemption: unexpected error');
    err = new RedemptionError(500, 'internal_error', 'internal error; nothing was spent if the request did not reach the model');
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
  if (err.status === 401 && !ctx.response.get('www-authenticate')) ctx.set('www-authenticate', rt.challenge.wwwAuthenticate(rt.deps.keyring(), rt.deps.now()));
  ctx.set('cache-control', 'no-store');
  ctx.body = err.toBody();
  return outcome;
}

function outcomeOf(e: RedemptionError): Outcome {
  switch (e.code) {
    case 'credits_required':
      return 'needs_tokens';
    case 'invalid_token':
    case 'invalid_abuse_tokens':
    case 'abuse_tokens_required':
      return 'invalid_token';
    case 'token_spent':
      return 'conflict';
    case 'request_in_progress':
      return 'in_progress';
    case 'rate_limited':
      return 'rate_limited';
    case 'pseudonym_blocked':
      return 'blacklisted';
    case 'store_unavailable':
      return 'store_unavailable';
    case 'moderation_unavailable':
      return 'moderation_unavailable';
    case 'upstream_failed':
    case 'upstream_timeout':
    case 'upstream_busy':
      return 'upstream_failed';
    case 'upstream_rejected':
      return 'upstream_rejected';
    case 'client_closed_request':
      return 'client_gone';
    default:
      return 'bad_request';
  }
}

async function redeem(ctx: Context, rt: RedemptionRuntime): Promise<{ outcome: Outcome; stream: boolean }> {
  const admission = await admit(ctx, rt);
  const claimed = await claim(rt, admission);
  if (claimed.kind === 'replay') {
    replay(ctx, claimed.answer, admission.credits);
    return { outcome: 'replayed', stream: admission.stream };
  }
  return { outcome: await forward(ctx, rt, admission, claimed.claim), stream: admission.stream };
}

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
 * Errors and metrics are middleware on the route (middleware.ts), not part of the handler.
 *
 * Nothing here reads the peer address, X-Forwarded-For or any client header
 * other than Authorization and LLMTor-Abuse, and nothing request-specific is
 * logged.
 */
import type { Context, Middleware } from 'koa';
import { admit } from './admit.js';
import { claim } from './claim.js';
import { forward } from './forward.js';
import { report } from './middleware.js';
import { replay } from './reply.js';
import type { RedemptionRuntime } from './runtime.js';

export function chatCompletion(runtime: RedemptionRuntime): Middleware {
  return async (ctx: Context): Promise<void> => {
    const r = report(ctx);
    const admission = await admit(ctx, runtime);
    const claimed = await claim(runtime, admission);
    if (claimed.kind === 'replay') {
      replay(ctx, claimed.answer, admission.credits);
      r.outcome = 'replayed';
    } else {
      r.outcome = await forward(ctx, runtime, admission, claimed.claim);
    }
    // Labelled a stream only when the answer went out (an error answer is JSON, as before).
    r.stream = admission.stream;
  };
}

/**
 * Account authentication for the identity side. Unknown and malformed keys get
 * the same 401 (no hint whether an account exists). Failed attempts are
 * limited per client IP (memory only) and globally (shared store); a limited
 * client gets 429 before its key is even looked up.
 */
import type { Context } from 'koa';
import { ApiError, tooManyRequests } from '../http/apiError.js';
import type { IdentityStore } from '../store/identityStore.js';
import { accountKeyFromAuthorization, hashAccountKey } from './accountKey.js';
import { IpLimiter } from './ipLimiter.js';

const MINUTE = 60_000;

export interface Authenticator {
  /** Returns the account id or throws 401/429. */
  authenticate(ctx: Context): Promise<string>;
}

export function createAuthenticator(o: { store: IdentityStore; pepper: string; perIpPerMinute: number; globalPerMinute: number; now: () => number }): Authenticator {
  const perIp = new IpLimiter(o.perIpPerMinute, MINUTE);
  const unauthorized = () =>
    new ApiError(401, 'invalid_account_key', 'missing or invalid account key: send Authorization: Bearer <account key>', { headers: { 'WWW-Authenticate': 'Bearer realm="llmtor"' } });
  return {
    async authenticate(ctx: Context): Promise<string> {
      const now = o.now();
      const ip = ctx.ip || 'unknown';
      const ipCheck = perIp.hit(ip, now, 0);
      if (!ipCheck.allowed) throw tooManyRequests('too many failed account-key attempts from this address', ipCheck.retryAfterMs);
      const global = await o.store.rateLimit('authfail:global', o.globalPerMinute, MINUTE, now, 0);
      if (!global.allowed) throw tooManyRequests('too many failed account-key attempts; try again shortly', global.retryAfterMs);
      const digits = accountKeyFromAuthorization(ctx.get('authorization') || undefined);
      const accountId = digits ? await o.store.accountIdForKeyHash(hashAccountKey(o.pepper, digits)) : undefined;
      if (accountId) return accountId;
      perIp.hit(ip, now, 1);
      await o.store.rateLimit('authfail:global', o.globalPerMinute, MINUTE, now, 1);
      throw unauthorized();
    },
  };
}

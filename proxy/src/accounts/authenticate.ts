/**
 * Account authentication for the issuance side. Unknown and malformed keys get
 * the same 401 (no hint whether an account exists). Failed attempts are
 * limited per client IP (memory only) and globally (shared store); a limited
 * client gets 429 before its key is even looked up.
 */
import type { Context } from 'koa';
import { ApiError, tooManyRequests } from '../http/apiError.js';
import type { IssuanceStore } from '../store/issuanceStore.js';
import { accountKeyFromAuthorization, hashAccountKey } from './accountKey.js';
import { IpLimiter } from './ipLimiter.js';

const MINUTE = 60_000;

export interface Authenticator {
  /** Returns the account id or throws 401/429. */
  authenticate(ctx: Context): Promise<string>;
}

export function createAuthenticator(o: { store: IssuanceStore; pepper: string; perIpPerMinute: number; globalPerMinute: number; now: () => number }): Authenticator {
  const perIp = new IpLimiter(o.perIpPerMinute, MINUTE);
  /** Addresses with a failed attempt in this window: over the global budget they get no further attempt. */
  const failedOnce = new IpLimiter(1, MINUTE);
  /** Lookups in flight by address and key hash (memory only): concurrent requests with one key share one lookup and one count. */
  const inflight = new Map<string, Promise<string | undefined>>();
  const unauthorized = () =>
    new ApiError('invalid_account_key', 'missing or invalid account key: send Authorization: Bearer <account key>', { headers: { 'WWW-Authenticate': 'Bearer realm="llmtor"' } });
  const tooMany = (retryAfterMs: number) => tooManyRequests('too many failed account-key attempts from this address', retryAfterMs);

  /** One key tried from one address. Counted as a failure before the lookup's await and given back if the key is right. */
  const lookup = (ip: string, keyHash: string, now: number): Promise<string | undefined> => {
    const reserved = perIp.hit(ip, now, 1);
    if (!reserved.allowed) return Promise.reject(tooMany(reserved.retryAfterMs));
    return o.store.accountIdForKeyHash(keyHash).then(async (accountId) => {
      if (accountId) perIp.refund(ip, now);
      else {
        failedOnce.hit(ip, now, 1);
        await o.store.rateLimit('authfail:global', o.globalPerMinute, MINUTE, now, 1);
      }
      return accountId;
    });
  };

  return {
    async authenticate(ctx: Context): Promise<string> {
      const now = o.now();
      const ip = ctx.ip || 'unknown';
      const ipCheck = perIp.hit(ip, now, 0);
      if (!ipCheck.allowed) throw tooMany(ipCheck.retryAfterMs);
      const global = await o.store.rateLimit('authfail:global', o.globalPerMinute, MINUTE, now, 0);
      // Over the global budget (a flood of wrong keys from many addresses) an address that has failed in
      // this window gets no more attempts, but one that has not still authenticates: the flood costs each
      // attacking address its attempts, not every user their access.
      if (!global.allowed) {
        const once = failedOnce.hit(ip, now, 0);
        if (!once.allowed) throw tooManyRequests('too many failed account-key attempts; try again shortly', Math.max(once.retryAfterMs, global.retryAfterMs));
      }
      const digits = accountKeyFromAuthorization(ctx.get('authorization') || undefined);
      if (!digits) {
        const r = perIp.hit(ip, now, 1);
        if (!r.allowed) throw tooMany(r.retryAfterMs);
        failedOnce.hit(ip, now, 1);
        await o.store.rateLimit('authfail:global', o.globalPerMinute, MINUTE, now, 1);
        throw unauthorized();
      }
      const keyHash = hashAccountKey(o.pepper, digits);
      const slot = `${ip} ${keyHash}`;
      let p = inflight.get(slot);
      if (!p) {
        p = lookup(ip, keyHash, now).finally(() => inflight.delete(slot));
        inflight.set(slot, p);
      }
      const accountId = await p;
      if (accountId) return accountId;
      throw unauthorized();
    },
  };
}

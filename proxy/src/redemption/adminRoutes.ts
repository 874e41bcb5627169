/**
 * Pseudonym administration (operator, Bearer admin token) and self-revocation
 * of a transient abuse token by its holder (presenting it proves holding it).
 */
import type Router from '@koa/router';
import { adminTokenMatches, bearerToken } from '../http/adminToken.js';
import type { Context } from 'koa';
import { z } from 'zod';
import { readBody } from './bodyReader.js';
import type { RedemptionRuntime } from './runtime.js';
import { ABUSE_HEADER } from './credentials.js';
import { RedemptionError } from './errors.js';
import { fromBase64Url, isProtocolError, verifyToken } from '@llmtor/protocol';
import { pseudonymPart } from './tokenHashes.js';
import type { BlacklistKind } from './store.js';

function sendError(ctx: Context, e: unknown): void {
  const err = e instanceof RedemptionError ? e : new RedemptionError('store_unavailable', 'the pseudonym store is unreachable; retry later');
  ctx.status = err.status;
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  ctx.body = err.toBody();
}

function requireAdmin(ctx: Context, token: string | undefined): void {
  if (!token) throw new RedemptionError('not_found', 'the pseudonym admin API is not enabled (set adminToken)');
  const presented = bearerToken(ctx.get('authorization'));
  if (!presented || !adminTokenMatches(presented, token)) {
    throw new RedemptionError('unauthorized', 'admin API needs Authorization: Bearer <admin token>', { headers: { 'www-authenticate': 'Bearer' } });
  }
}

const kindSchema = z.enum(['permanent', 'transient']);
const pseudonymSchema = z.string().regex(/^[0-9a-f]{64}$/, 'a pseudonym is 64 lowercase hex digits');
const addSchema = z.object({ ttlSeconds: z.number().int().positive().max(10 * 365 * 86_400).optional() }).strict();

function pseudonymPath(ctx: Context): { kind: BlacklistKind; pseudonym: string } {
  const kind = kindSchema.safeParse(ctx.params.kind);
  const p = pseudonymSchema.safeParse(ctx.params.pseudonym);
  if (!kind.success || !p.success) throw new RedemptionError('invalid_request', 'path is /admin/pseudonyms/blacklist/{permanent|transient}/{64 hex digits}');
  return { kind: kind.data, pseudonym: p.data };
}

export function mountAdminRoutes(router: Router, runtime: RedemptionRuntime): void {
  const wrap = (fn: (ctx: Context) => Promise<void>) => async (ctx: Context) => {
    try {
      ctx.set('cache-control', 'no-store');
      await fn(ctx);
    } catch (e) {
      sendError(ctx, e);
    }
  };

  router.get(
    '/admin/pseudonyms/blacklist',
    wrap(async (ctx) => {
      requireAdmin(ctx, runtime.config.adminToken);
      const list = await runtime.store.blacklistList();
      ctx.body = { data: list.map((e) => ({ kind: e.kind, pseudonym: e.pseudonym, expires_at: e.expiresAt ? new Date(e.expiresAt).toISOString() : null })) };
    }),
  );

  router.put(
    '/admin/pseudonyms/blacklist/:kind/:pseudonym',
    wrap(async (ctx) => {
      requireAdmin(ctx, runtime.config.adminToken);
      const { kind, pseudonym } = pseudonymPath(ctx);
      const raw = await readBody(ctx.req, 4096, () => new RedemptionError('request_too_large', 'body too large'));
      let body: unknown = {};
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          throw new RedemptionError('invalid_json', 'body is not valid JSON');
        }
      }
      const b = addSchema.safeParse(body);
      if (!b.success) throw new RedemptionError('invalid_request', 'body is { "ttlSeconds"?: positive integer }');
      const entry = { kind, pseudonym, ...(b.data.ttlSeconds ? { expiresAt: runtime.deps.now() + b.data.ttlSeconds * 1000 } : {}) };
      await runtime.store.blacklistAdd(entry);
      ctx.status = 200;
      ctx.body = { kind: entry.kind, pseudonym: entry.pseudonym, expires_at: entry.expiresAt ? new Date(entry.expiresAt).toISOString() : null };
    }),
  );

  router.delete(
    '/admin/pseudonyms/blacklist/:kind/:pseudonym',
    wrap(async (ctx) => {
      requireAdmin(ctx, runtime.config.adminToken);
      const { kind, pseudonym } = pseudonymPath(ctx);
      const removed = await runtime.store.blacklistRemove(kind, pseudonym);
      if (!removed) throw new RedemptionError('not_found', 'that pseudonym is not blacklisted');
      ctx.status = 204;
    }),
  );

  router.get(
    '/admin/pseudonyms/flagged',
    wrap(async (ctx) => {
      requireAdmin(ctx, runtime.config.adminToken);
      const limit = Math.min(1000, Math.max(1, Number(ctx.query.limit) || 100));
      ctx.body = { data: await runtime.store.flagged(limit) };
    }),
  );

  // The holder of a transient abuse token revokes it (e.g. it was stolen) by presenting it: LLMTor-Abuse: transient=<b64url>.
  router.post(
    '/v1/abuse/revoke',
    wrap(async (ctx) => {
      const m = /^\s*transient\s*=\s*([A-Za-z0-9_-]+)\s*$/.exec(ctx.get(ABUSE_HEADER));
      if (!m) throw new RedemptionError('invalid_abuse_tokens', 'send the transient token to revoke as LLMTor-Abuse: transient=<base64url>');
      const now = runtime.deps.now();
      const keyring = runtime.deps.keyring();
      let end = 0;
      try {
        const bytes = fromBase64Url(m[1]!, 'transient');
        verifyToken(
          bytes,
          (id) => {
            const e = keyring.redeeming(id, now);
            if (!e || e.meta.purpose !== 'transient') return undefined;
            end = e.redemptionEnd;
            return e.publicKey;
          },
          runtime.challenge.digest,
        );
        await runtime.store.blacklistAdd({ kind: 'transient', pseudonym: pseudonymPart('transient', bytes), expiresAt: end });
      } catch (e) {
        if (isProtocolError(e)) throw new RedemptionError('invalid_token', 'the transient abuse token does not verify under a transient key that is redeemable now', { headers: { 'www-authenticate': runtime.challenge.wwwAuthenticate(keyring, now) } });
        throw e;
      }
      ctx.status = 200;
      ctx.body = { revoked: true, until: new Date(end).toISOString() };
    }),
  );
}

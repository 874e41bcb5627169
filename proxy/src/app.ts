/**
 * The Koa app both roles share: /healthz (alive), /readyz (Redis reachable,
 * keys loaded, every role module ready), /metrics, the issuer directory, and
 * the routers of the role modules this process runs.
 */
import { createHash } from 'node:crypto';
import Koa from 'koa';
import Router from '@koa/router';
import { ISSUER_DIRECTORY_PATH, MEDIA_TYPE_ISSUER_DIRECTORY, type Keyring } from '@llmtor/protocol';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { RoleModule } from './appTypes.js';
import { notModified } from './http/conditional.js';
import { errorMiddleware } from './http/errorMiddleware.js';
import { httpMetrics } from './metrics.js';

export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean>;
  /** What is wrong, for the /readyz body (e.g. the keys that do not open); omitted when undefined. */
  detail?(): unknown;
}

export interface AppOptions {
  logger: Logger;
  metrics: Registry;
  modules: readonly RoleModule[];
  keyring: () => Keyring;
  now: () => number;
  issuerRequestUri: string;
  /** Published in the directory: clients derive the TokenChallenge from it (and pin it). */
  issuerName?: string;
  directoryMaxAgeSeconds: number;
  trustProxy: boolean;
  /** Beyond the modules' own ready(): Redis connections, keys loaded. */
  checks: readonly ReadinessCheck[];
}

async function withTimeout(p: Promise<boolean>, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p.catch(() => false), new Promise<boolean>((r) => (t = setTimeout(() => r(false), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

export function createApp(o: AppOptions): Koa {
  const app = new Koa();
  app.proxy = o.trustProxy;
  app.silent = true;
  app.use(errorMiddleware(o.logger, httpMetrics(o.metrics)));

  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const results: Record<string, boolean> = {};
    await Promise.all([
      ...o.checks.map(async (c) => (results[c.name] = await withTimeout(c.check(), 2000))),
      ...o.modules.map(async (m) => (results[m.role] = m.ready ? await withTimeout(m.ready(), 2000) : true)),
    ]);
    const ready = Object.values(results).every(Boolean);
    const details: Record<string, unknown> = {};
    for (const c of o.checks) {
      const d = c.detail?.();
      if (d !== undefined) details[c.name] = d;
    }
    ctx.status = ready ? 200 : 503;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = Object.keys(details).length ? { ready, checks: results, details } : { ready, checks: results };
  });

  router.get('/metrics', async (ctx) => {
    ctx.type = o.metrics.contentType;
    ctx.body = await o.metrics.metrics();
  });

  router.get(ISSUER_DIRECTORY_PATH, (ctx) => {
    const body = JSON.stringify(o.keyring().directory(o.issuerRequestUri, o.now(), o.issuerName));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    ctx.set('ETag', etag);
    ctx.set('Cache-Control', `public, max-age=${o.directoryMaxAgeSeconds}`);
    ctx.status = 200;
    if (notModified(ctx.get('if-none-match') || undefined, etag)) {
      ctx.status = 304;
      return;
    }
    ctx.type = MEDIA_TYPE_ISSUER_DIRECTORY;
    ctx.body = body;
  });

  app.use(router.routes()).use(router.allowedMethods());
  for (const m of o.modules) app.use(m.router.routes()).use(m.router.allowedMethods());
  return app;
}

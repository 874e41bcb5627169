/**
 * An in-process app around the redemption module, as the skeleton would mount
 * it, with everything a privacy test needs to read: captured log lines, the
 * metrics registry, the Redis connection.
 */
import Koa from 'koa';
import { Redis, type Cluster } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import type { AppDeps, RoleModule } from '../../../src/appTypes.js';
import { createRedemptionModule } from '../../../src/redemption/module.js';
import { redemptionConfigSchema, type RedemptionConfigInput } from '../../../src/redemption/config.js';
import type { Mint } from './tokens.js';

export interface TestApp {
  url: string;
  baseUrl: string;
  logs: string[];
  metrics: Registry;
  redis: Redis | Cluster | undefined;
  module: RoleModule;
  setNow(t: number | undefined): void;
  close(): Promise<void>;
}

/** `redisClient`: a client the caller made (e.g. through Sentinels, as production does); closed with the app. */
export async function startTestApp(opts: { mint: Mint; config?: RedemptionConfigInput; redisUrl?: string; redisClient?: Redis | Cluster; now?: () => number }): Promise<TestApp> {
  const logs: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = pino({ level: 'trace' }, dest);
  const metrics = new Registry();
  const redis = opts.redisClient ?? (opts.redisUrl ? new Redis(opts.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true }) : undefined);
  if (redis && !opts.redisClient) {
    redis.on('error', () => undefined);
    await redis.connect();
  }
  let fixedNow: number | undefined;
  const keyring = opts.mint.keyring();
  const deps: AppDeps = {
    logger,
    metrics,
    keyring: () => keyring,
    issuerName: opts.mint.issuer,
    now: () => fixedNow ?? (opts.now ? opts.now() : Date.now()),
    redis,
  };
  const module = await createRedemptionModule(deps, redemptionConfigSchema.parse(opts.config ?? {}));
  const app = new Koa();
  // The redemption side must not trust X-Forwarded-For (Koa's default, kept explicit).
  app.proxy = false;
  app.use(module.router.routes());
  app.use(module.router.allowedMethods());
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    baseUrl: `http://127.0.0.1:${port}/v1`,
    logs,
    metrics,
    redis,
    module,
    setNow(t) {
      fixedNow = t;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await module.close?.();
      redis?.disconnect();
    },
  };
}

/** A chat-completions call with raw fetch (full control over headers). */
export async function chat(
  url: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Headers; text: string; json: () => unknown }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

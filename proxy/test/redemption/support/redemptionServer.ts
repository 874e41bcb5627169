/**
 * A runnable redemption-only server for multi-process tests (does not depend on
 * the skeleton's main.ts): a minimal Koa app around the redemption module.
 *
 * env: REDIS_URL (unset = embedded memory store), KEYS_FILE (JSON array of key
 * metadata, public parts only), ISSUER, REDEMPTION_CONFIG (JSON, optional),
 * PORT (default 0). Prints "LISTENING <port>" on stdout when ready.
 */
import Koa from 'koa';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { pino, destination } from 'pino';
import { Registry } from 'prom-client';
import { keyEntry, Keyring, type KeyMetadata } from '@llmtor/protocol';
import { createRedemptionModule } from '../../../src/redemption/module.js';
import { redemptionConfigSchema } from '../../../src/redemption/config.js';

const env = process.env;
const metas = JSON.parse(readFileSync(env.KEYS_FILE ?? '', 'utf8')) as KeyMetadata[];
const keyring = new Keyring(metas.map(keyEntry));
// Fail fast while Redis is down (no offline queue): the request gets a 503 at once instead of waiting.
const redis = env.REDIS_URL ? new Redis(env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 100 }) : undefined;
redis?.on('error', () => undefined);
if (redis) await new Promise<void>((resolve) => redis.once('ready', () => resolve()));

const module = await createRedemptionModule(
  { logger: pino({ level: env.LOG_LEVEL ?? 'warn' }, destination(2)), metrics: new Registry(), keyring: () => keyring, issuerName: env.ISSUER ?? 'llmtor-test-issuer', now: () => Date.now(), redis },
  redemptionConfigSchema.parse(JSON.parse(env.REDEMPTION_CONFIG ?? '{}')),
);
const app = new Koa();
app.proxy = false;
app.use(module.router.routes());
// Started with --max-http-header-size=65536 (processes.ts): room for ~120 tokens in one Authorization header (the default 16 KiB fits ~30).
const server = app.listen({ port: Number(env.PORT ?? 0), host: '127.0.0.1' }, () => {
  process.stdout.write(`LISTENING ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  redis?.disconnect();
  void module.close?.().then(() => process.exit(0));
});

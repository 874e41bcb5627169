/**
 * Builds a proxy process from its configuration: logger, metrics, Redis
 * connections (one per role, so redemption pods can point at a server without
 * account data), keys, the role modules this process runs, and the app.
 * Account code (accounts, ledger, billing, issuance) is imported only when the
 * issuance role is enabled.
 */
import { randomBytes } from 'node:crypto';
import type Koa from 'koa';
import type { KeyUnwrapper } from '@llmtor/protocol';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createApp, type ReadinessCheck } from './app.js';
import type { AppDeps, RoleModule } from './appTypes.js';
import { ConfigError, formatZodIssues, issuerRequestUri, type ProxyConfig } from './config.js';
import { DirectoryKeySource } from './keys/directoryKeySource.js';
import { EphemeralKeySource } from './keys/ephemeralKeySource.js';
import { localKeyUnwrapper } from './keys/localKeyUnwrapper.js';
import { KeyManager } from './keys/keyManager.js';
import type { KeySource } from './keys/keySource.js';
import { createLogger } from './logger.js';
import { createRegistry } from './metrics.js';
import { closeRedisClient, createRedisClient, logRedisErrors, type RedisClient } from './redis/connect.js';
import { describeTarget, hasServer, type RedisRole } from './redis/redisConfig.js';
import { loadRedemptionModule } from './redemptionLoader.js';
import { listen, type RunningServer } from './server.js';
import type { IssuanceModuleOptions } from './issuance/module.js';
import type { KeyVaultUnwrapperOptions } from './keys/keyVaultUnwrapper.js';
import type { IssuanceStore } from './store/issuanceStore.js';

export interface ProxyOverrides {
  logger?: Logger;
  metrics?: Registry;
  now?: () => number;
  keySource?: KeySource;
  keyUnwrapper?: KeyUnwrapper;
  /** Azure credential and SDK options for the Key Vault unwrapper (default: DefaultAzureCredential, SDK defaults). */
  keyVault?: Pick<KeyVaultUnwrapperOptions, 'credential' | 'clientOptions'>;
  /** Replace the issuance store (tests). */
  issuanceStore?: IssuanceStore;
  signer?: IssuanceModuleOptions['signer'];
}

export interface BuiltProxy {
  app: Koa;
  config: ProxyConfig;
  logger: Logger;
  keys: KeyManager;
  modules: RoleModule[];
  issuanceStore?: IssuanceStore;
  /** Closes modules, key watching and Redis connections (call after the server stopped). */
  close(): Promise<void>;
}

/** The role's Redis client (single node, Sentinel or Cluster), or undefined when none is configured. */
function connectRedis(config: ProxyConfig, role: RedisRole, logger: Logger, closers: (() => Promise<void>)[]): RedisClient | undefined {
  const target = config.redis[role];
  if (!hasServer(target)) return undefined;
  const r = createRedisClient(target, role);
  logRedisErrors(r, logger, role);
  closers.push(() => closeRedisClient(r));
  logger.info({ role, redis: describeTarget(target) }, 'Redis');
  return r;
}

/**
 * The redemption section as its module receives it: the app's admin
 * credential stands in for the redemption admin token when that is not set.
 */
export function redemptionSection(config: ProxyConfig): Record<string, unknown> {
  const section: Record<string, unknown> = { ...config.redemption };
  if (section.adminToken === undefined && config.adminToken) section.adminToken = config.adminToken;
  return section;
}

/**
 * What opens the data keys of envelope-encrypted key files (issuance only; a
 * redemption-only process never opens private keys): Azure Key Vault for files
 * wrapped there, the local key-encryption key for the others.
 */
async function keyUnwrapper(config: ProxyConfig, o: ProxyOverrides): Promise<KeyUnwrapper | undefined> {
  if (o.keyUnwrapper) return o.keyUnwrapper;
  const local = config.keys.kekFile ? localKeyUnwrapper(config.keys.kekFile, config.keys.kekName) : undefined;
  if (!config.keys.keyVaultUrls) return local;
  // Loaded only when configured: the Azure SDK is large.
  const { KeyVaultUnwrapper } = await import('./keys/keyVaultUnwrapper.js');
  return new KeyVaultUnwrapper({ vaultUrls: config.keys.keyVaultUrls, ...o.keyVault, ...(local ? { fallback: local } : {}) });
}

export async function buildProxy(config: ProxyConfig, o: ProxyOverrides = {}): Promise<BuiltProxy> {
  const logger = o.logger ?? createLogger({ level: config.logLevel });
  const metrics = o.metrics ?? createRegistry();
  const now = o.now ?? Date.now;
  const issuance = config.roles.includes('issuance');
  const redemption = config.roles.includes('redemption');
  const closers: (() => Promise<void>)[] = [];
  const checks: ReadinessCheck[] = [];

  const redemptionModule = redemption ? await loadRedemptionModule() : undefined;
  let redemptionConfig: unknown;
  if (redemption) {
    if (!redemptionModule) throw new ConfigError(['setting roles (env LLMTOR_ROLES): the redemption role is not available in this build (proxy/src/redemption/module.ts is missing)']);
    const parsed = redemptionModule.redemptionConfigSchema.safeParse(redemptionSection(config));
    if (!parsed.success) throw new ConfigError(formatZodIssues(parsed.error, ['redemption']));
    redemptionConfig = parsed.data;
  }

  let keySource = o.keySource;
  if (!keySource) {
    if (config.keys.dir) {
      const unwrapper = issuance ? await keyUnwrapper(config, o) : undefined;
      keySource = new DirectoryKeySource(config.keys.dir, { openPrivateKeys: issuance, ...(unwrapper ? { unwrapper } : {}) });
    } else {
      keySource = new EphemeralKeySource(now);
      logger.warn('NO KEY DIRECTORY (LLMTOR_KEY_DIR): using EPHEMERAL signing keys generated in memory — demo only; tokens become worthless when this process stops and other processes cannot verify them');
    }
  }
  const keys = new KeyManager(keySource, logger, { pollIntervalMs: config.keys.pollIntervalMs, now });
  await keys.start();
  closers.push(() => keys.close());
  checks.push({
    name: 'keys',
    // Not ready while a key that can still sign does not open (its key-encryption key is missing or another one).
    check: async () => keys.loaded && keys.keyring().size > 0 && keys.unopenedSigningKeys().length === 0,
    detail: () => {
      const problems = keys.problems();
      if (!problems.length) return undefined;
      // Public facts only: key ids, purposes, file names and why (never key material).
      return { unopenedKeys: problems.map((p) => ({ file: p.file, ...(p.key ? { keyId: p.key.keyId, purpose: p.key.purpose, ...(p.key.epoch ? { epoch: p.key.epoch } : {}), canSign: Date.parse(p.key.issuanceEnd) > now() } : {}), problem: p.message })) };
    },
  });

  const modules: RoleModule[] = [];
  let issuanceStore: IssuanceStore | undefined;
  try {
    if (issuance) {
      const [{ createIssuanceModule }, { RedisIssuanceStore }, { MemoryIssuanceStore }, { createStripe }] = await Promise.all([
        import('./issuance/module.js'),
        import('./store/redisIssuanceStore.js'),
        import('./store/memoryIssuanceStore.js'),
        import('./billing/stripeClient.js'),
      ]);
      let redis: RedisClient | undefined;
      if (o.issuanceStore) issuanceStore = o.issuanceStore;
      else if ((redis = connectRedis(config, 'issuance', logger, closers))) {
        issuanceStore = new RedisIssuanceStore(redis);
      } else {
        issuanceStore = new MemoryIssuanceStore();
        logger.warn('NO REDIS (ISSUANCE_REDIS_* / REDIS_*: URL, SENTINELS or CLUSTER_NODES): accounts and balances are kept IN THIS PROCESS ONLY — single process, NOT DURABLE, lost on exit; for the local demo only');
      }
      const store = issuanceStore;
      checks.push({ name: 'issuance_store', check: () => store.ping() });
      let pepper = config.accounts.pepper;
      if (!pepper) {
        pepper = randomBytes(32).toString('base64url');
        logger.warn('no account pepper configured: generated one in memory; account keys stop working when this process stops');
      }
      const deps: AppDeps = { logger: logger.child({ role: 'issuance' }), metrics, keyring: () => keys.keyring(), issuerName: config.issuerName, now, redis };
      const mod = await createIssuanceModule(deps, { config, store, keys, stripe: createStripe(config.stripe), pepper, ...(o.signer ? { signer: o.signer } : {}) });
      modules.push(mod);
    }
    if (redemption && redemptionModule) {
      const redis = connectRedis(config, 'redemption', logger, closers);
      if (redis) {
        checks.push({ name: 'redemption_redis', check: async () => (await redis.ping().catch(() => '')) === 'PONG' });
      } else {
        logger.warn('NO REDIS (REDEMPTION_REDIS_* / REDIS_*: URL, SENTINELS or CLUSTER_NODES): spent tokens are kept IN THIS PROCESS ONLY — single process, NOT DURABLE; for the local demo only');
      }
      // Redemption logs must carry nothing identifying: the module binds its own role, no request data.
      const deps: AppDeps = { logger, metrics, keyring: () => keys.keyring(), issuerName: config.issuerName, now, redis };
      modules.push(await redemptionModule.createRedemptionModule(deps, redemptionConfig));
    }
  } catch (e) {
    for (const m of modules) await m.close?.();
    for (const c of closers.reverse()) await c();
    throw e;
  }

  const app = createApp({
    logger,
    metrics,
    modules,
    keyring: () => keys.keyring(),
    now,
    issuerRequestUri: issuerRequestUri(config),
    issuerName: config.issuerName,
    directoryMaxAgeSeconds: config.directoryMaxAgeSeconds,
    trustProxy: config.trustProxy,
    checks,
  });

  return {
    app,
    config,
    logger,
    keys,
    modules,
    ...(issuanceStore ? { issuanceStore } : {}),
    async close() {
      for (const m of modules) await m.close?.();
      for (const c of closers.reverse()) await c();
    },
  };
}

export interface RunningProxy extends BuiltProxy {
  url: string;
  port: number;
  server: RunningServer;
  /** Graceful: stop accepting, finish in-flight requests (up to the grace period), then close everything. */
  stop(graceMs?: number): Promise<void>;
}

export async function startProxy(config: ProxyConfig, o: ProxyOverrides = {}): Promise<RunningProxy> {
  const built = await buildProxy(config, o);
  let server: RunningServer;
  try {
    server = await listen(built.app, config.listen.host, config.listen.port);
  } catch (e) {
    await built.close();
    throw e;
  }
  built.logger.info({ url: server.url, roles: config.roles }, 'listening');
  let stopping: Promise<void> | undefined;
  return {
    ...built,
    url: server.url,
    port: server.port,
    server,
    stop(graceMs = config.shutdownGraceMs) {
      stopping ??= (async () => {
        await server.close(graceMs);
        await built.close();
      })();
      return stopping;
    },
  };
}

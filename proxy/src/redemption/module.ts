/**
 * The anonymous redemption role: OpenAI-compatible chat completions paid with
 * Privacy Pass credit tokens, GET /v1/models with prices, pseudonym admin and
 * self-revocation. Mounted by the proxy skeleton (see appTypes.ts).
 *
 * Deliberately receives no account store: the redemption role runs without any
 * account data reachable.
 */
import Router from '@koa/router';
import { Cluster, type Redis } from 'ioredis';
import type { AppDeps, RoleModule } from '../appTypes.js';
import { createModerator } from '../moderation/index.js';
import { HttpUpstream } from '../upstream/httpUpstream.js';
import { LocalStandInUpstream } from '../upstream/localStandInUpstream.js';
import { mountAdminRoutes } from './adminRoutes.js';
import { chatCompletion } from './chatCompletions.js';
import type { RedemptionRuntime, ResolvedModel } from './runtime.js';
import { redemptionConfigSchema, type RedemptionConfig } from './config.js';
import { AbuseTokenCache, ChallengeContext } from './credentials.js';
import { MemoryRedemptionStore } from './memoryStore.js';
import { RedemptionMetrics } from './metrics.js';
import { redemptionErrors, redemptionMetrics } from './middleware.js';
import { modelList } from './modelsRoute.js';
import { RedisRedemptionStore } from './redisStore.js';

export { redemptionConfigSchema, type RedemptionConfig, type RedemptionConfigInput } from './config.js';

export async function createRedemptionModule(deps: AppDeps, config: RedemptionConfig): Promise<RoleModule> {
  // Accept an input-shaped object too (defaults filled); a parsed config passes through unchanged.
  const cfg = redemptionConfigSchema.parse(config);
  const logger = deps.logger.child({ role: 'redemption' });
  const standIns: LocalStandInUpstream[] = [];
  const upstreams = new Map<string, HttpUpstream>();
  for (const [name, p] of Object.entries(cfg.providers)) {
    if (p.kind === 'local-stand-in') {
      const s = new LocalStandInUpstream({ record: false });
      const { baseUrl } = await s.listen(0, '127.0.0.1');
      standIns.push(s);
      upstreams.set(name, new HttpUpstream({ name, baseUrl, apiKeys: [], authHeader: 'authorization', timeoutMs: p.timeoutMs, idleTimeoutMs: p.idleTimeoutMs }));
      logger.warn({ provider: name }, 'redemption: provider is the LOCAL STAND-IN (canned text, not a language model)');
    } else {
      upstreams.set(name, new HttpUpstream({ name, baseUrl: p.baseUrl, apiKeys: p.apiKeys, authHeader: p.authHeader, timeoutMs: p.timeoutMs, idleTimeoutMs: p.idleTimeoutMs }));
    }
  }
  const models = new Map<string, ResolvedModel>();
  for (const m of cfg.models) {
    const upstream = upstreams.get(m.provider);
    const provider = cfg.providers[m.provider];
    if (!upstream || !provider) throw new Error(`redemption config: model ${JSON.stringify(m.id)} names unknown provider ${JSON.stringify(m.provider)}`);
    if (models.has(m.id)) throw new Error(`redemption config: model ${JSON.stringify(m.id)} is listed twice`);
    models.set(m.id, { config: m, providerName: m.provider, upstream, upstreamModel: m.upstreamModel ?? m.id, transform: provider.transform });
  }

  const store = deps.redis
    ? new RedisRedemptionStore(deps.redis, cfg.keyPrefix, cfg.redisTimeoutMs, { replicas: claimReplicas(deps.redis, cfg.durableClaims.replicas), timeoutMs: cfg.durableClaims.timeoutMs }, {
        bucketHexDigits: cfg.spentBucketHexDigits,
        legacyPrefix: cfg.legacySpentPrefix,
      })
    : new MemoryRedemptionStore(deps.now);
  const runtime: RedemptionRuntime = {
    config: cfg,
    deps,
    logger,
    store,
    moderator: createModerator(cfg.moderation),
    models,
    metrics: new RedemptionMetrics(deps.metrics),
    challenge: new ChallengeContext(deps.issuerName),
    abuseCache: new AbuseTokenCache(),
  };

  const router = new Router();
  const created = Math.floor(deps.now() / 1000);
  const list = modelList(cfg.models, created);
  router.get('/v1/models', (ctx) => {
    ctx.set('cache-control', 'public, max-age=300');
    ctx.body = list;
  });
  router.post('/v1/chat/completions', redemptionMetrics(runtime.metrics), redemptionErrors(runtime), chatCompletion(runtime));
  mountAdminRoutes(router, runtime);

  logger.info({ models: cfg.models.map((m) => m.id), providers: Object.keys(cfg.providers), moderation: cfg.moderation.provider, store: deps.redis ? 'redis' : 'memory' }, 'redemption: ready');

  return {
    role: 'redemption',
    router,
    async ready() {
      return store.healthy();
    },
    async close() {
      for (const u of upstreams.values()) u.close();
      await Promise.all(standIns.map((s) => s.close()));
    },
  };
}

/** `auto`: wait for one replica where a failover can promote one (Sentinel, Cluster), none on a single node. */
function claimReplicas(redis: Redis | Cluster, configured: number | 'auto'): number {
  if (configured !== 'auto') return configured;
  if (redis instanceof Cluster) return 1;
  return (redis.options.sentinels?.length ?? 0) > 0 ? 1 : 0;
}

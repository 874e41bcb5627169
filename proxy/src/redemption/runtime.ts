/** What the redemption role holds for its lifetime and every request stage reads. */
import type { Logger } from 'pino';
import type { AppDeps } from '../appTypes.js';
import type { Moderator } from '../moderation/types.js';
import type { HttpUpstream } from '../upstream/httpUpstream.js';
import type { ModelConfig, RedemptionConfig, RequestTransform } from './config.js';
import type { AbuseTokenCache, ChallengeContext } from './credentials.js';
import type { RedemptionMetrics } from './metrics.js';
import type { RedemptionStore } from './store.js';

export interface ResolvedModel {
  config: ModelConfig;
  providerName: string;
  upstream: HttpUpstream;
  upstreamModel: string;
  transform: RequestTransform;
}

export interface RedemptionRuntime {
  config: RedemptionConfig;
  deps: AppDeps;
  logger: Logger;
  store: RedemptionStore;
  moderator: Moderator;
  models: Map<string, ResolvedModel>;
  metrics: RedemptionMetrics;
  challenge: ChallengeContext;
  abuseCache: AbuseTokenCache;
}

const modelConfigCache = new WeakMap<Map<string, ResolvedModel>, ModelConfig[]>();
/** The configured models as a list, computed once per runtime (not on every request). */
export function modelConfigs(runtime: RedemptionRuntime): ModelConfig[] {
  let list = modelConfigCache.get(runtime.models);
  if (!list) {
    list = [...runtime.models.values()].map((m) => m.config);
    modelConfigCache.set(runtime.models, list);
  }
  return list;
}

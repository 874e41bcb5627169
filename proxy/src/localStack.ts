/**
 * The whole proxy in this process on the embedded defaults: in-process store,
 * ephemeral keys, no Stripe unless a stand-in is given. For the demo and for
 * trying the API; never for production (it logs so).
 */
import { randomBytes } from 'node:crypto';
import { loadConfig, type ProxyConfigInput } from './config.js';
import { loadRedemptionModule } from './redemptionLoader.js';
import { startProxy, type ProxyOverrides, type RunningProxy } from './stack.js';

export interface LocalStack {
  url: string;
  /** The admin credential of this stack (for /v1/admin/grants). */
  adminToken: string;
  proxy: RunningProxy;
  stop(): Promise<void>;
}

export async function startLocalStack(o: { config?: ProxyConfigInput; overrides?: ProxyOverrides; env?: NodeJS.ProcessEnv } = {}): Promise<LocalStack> {
  const adminToken = o.config?.adminToken ?? randomBytes(24).toString('base64url');
  const roles = o.config?.roles ?? ((await loadRedemptionModule()) ? ['issuance', 'redemption'] : ['issuance']);
  const config = loadConfig({
    env: o.env ?? {},
    overrides: {
      logLevel: 'warn',
      ...o.config,
      roles,
      adminToken,
      listen: { host: '127.0.0.1', port: 0, ...o.config?.listen },
      // No Stripe here: the admin grant is how a local account pays, so it counts for abuse tokens.
      issuance: { grantsCountAsPurchase: true, ...o.config?.issuance },
    },
  });
  const proxy = await startProxy(config, o.overrides);
  return { url: proxy.url, adminToken, proxy, stop: () => proxy.stop(2_000) };
}

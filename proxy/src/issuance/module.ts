/**
 * The issuance side as a RoleModule ("issuance"): accounts, purchases, Stripe
 * webhook, admin grants and token issuance. Loaded (dynamically, by stack.ts)
 * only when the role is enabled, so a redemption-only process never loads
 * account code. Owns the SignerPool and keeps it in step with the KeyManager.
 */
import Router from '@koa/router';
import type Stripe from 'stripe';
import type { KeyObject } from 'node:crypto';
import { SignerPool } from '@llmtor/protocol/server';
import { accountRoutes } from '../accounts/accountRoutes.js';
import { createAuthenticator } from '../accounts/authenticate.js';
import { grantRoutes } from '../admin/grantRoutes.js';
import type { AppDeps, RoleModule } from '../appTypes.js';
import { purchaseRoutes } from '../billing/purchaseRoutes.js';
import { webhookRoutes } from '../billing/webhookRoutes.js';
import type { ProxyConfig } from '../config.js';
import type { IssuanceContext } from '../issuanceContext.js';
import type { KeyManager } from '../keys/keyManager.js';
import { counter } from '../metrics.js';
import type { IssuanceStore } from '../store/issuanceStore.js';
import { issuanceRoutes } from './issuanceRoutes.js';
import { ReservationSweeper } from './reservationSweeper.js';
import type { BatchSigner } from './signer.js';

export interface IssuanceModuleOptions {
  config: ProxyConfig;
  store: IssuanceStore;
  keys: KeyManager;
  stripe: Stripe | undefined;
  /** Server secret of the account-key hash. */
  pepper: string;
  /** Tests may inject a signer (e.g. one that fails); default: a SignerPool. */
  signer?: BatchSigner & { setKeys?(keys: { keyId: string; pkcs8: Uint8Array }[]): Promise<void>; close?(): Promise<void> };
}

export async function createIssuanceModule(deps: AppDeps, o: IssuanceModuleOptions): Promise<RoleModule & { signer: BatchSigner; sweeper: ReservationSweeper }> {
  // Loaded only when enabled, and before the signer starts (nothing to stop if it fails): it
  // bundles the page's script with esbuild, a development dependency.
  const demo = o.config.demo
    ? await Promise.all([import('../demoPage/bundle.js'), import('../demoPage/demoRoutes.js')]).then(async ([b, r]) => ({ assets: await b.buildDemoAssets(), demoRoutes: r.demoRoutes }))
    : undefined;
  const signer = o.signer ?? new SignerPool(o.config.issuance.signerThreads);
  let signerHasKeys = false;
  await o.keys.onSigningKeys(async (keys: Map<string, KeyObject>) => {
    const list = [...keys].map(([keyId, k]) => ({ keyId, pkcs8: new Uint8Array(k.export({ type: 'pkcs8', format: 'der' })) }));
    try {
      await signer.setKeys?.(list);
    } finally {
      for (const k of list) k.pkcs8.fill(0);
    }
    signerHasKeys = true;
  });

  const ctx: IssuanceContext = {
    config: o.config,
    store: o.store,
    auth: createAuthenticator({
      store: o.store,
      pepper: o.pepper,
      perIpPerMinute: o.config.accounts.authFailuresPerIpPerMinute,
      globalPerMinute: o.config.accounts.authFailuresGlobalPerMinute,
      now: deps.now,
    }),
    logger: deps.logger,
    metrics: deps.metrics,
    now: deps.now,
    keys: o.keys,
    stripe: o.stripe,
    pepper: o.pepper,
  };

  const router = new Router();
  if (demo) {
    const r = demo.demoRoutes(ctx, demo.assets);
    router.use(r.routes(), r.allowedMethods());
  }
  for (const r of [
    accountRoutes(ctx),
    purchaseRoutes(ctx),
    webhookRoutes(ctx),
    grantRoutes(ctx),
    issuanceRoutes(ctx, {
      store: o.store,
      signer,
      keyring: deps.keyring,
      now: deps.now,
      logger: deps.logger,
      settings: {
        maxBatchSize: o.config.issuance.maxBatchSize,
        transientReissuesPerEpoch: o.config.issuance.transientReissuesPerEpoch,
        abuseRequires: !o.config.issuance.abuseTokensRequirePurchase ? 'none' : o.config.issuance.grantsCountAsPurchase ? 'purchase_or_grant' : 'purchase',
        idempotencyTtlMs: o.config.issuance.idempotencyTtlSeconds * 1000,
        pendingTakeoverMs: o.config.issuance.pendingTakeoverMs,
        keyGraceMs: o.config.issuance.keyGraceMs,
      },
      tokensIssued: counter(deps.metrics, 'llmtor_tokens_issued_total', 'Blind signatures issued, by key purpose', ['purpose']),
      signingFailures: counter(deps.metrics, 'llmtor_signing_failures_total', 'Blind signatures that failed (credit given back)', ['purpose']),
    }),
  ]) {
    router.use(r.routes(), r.allowedMethods());
  }

  const sweeper = new ReservationSweeper({
    store: o.store,
    now: deps.now,
    logger: deps.logger,
    abandonedAfterMs: o.config.issuance.abandonedAfterMs,
    intervalMs: o.config.issuance.sweepIntervalMs,
    swept: counter(deps.metrics, 'llmtor_issuance_abandoned_refunded_total', 'Credits (or abuse-token quota) given back for requests whose pod died before answering', ['purpose']),
  });
  sweeper.start();

  return {
    role: 'issuance',
    router,
    signer,
    sweeper,
    async ready() {
      return signerHasKeys && (await o.store.ping()) && deps.keyring().currentIssuing('credit', deps.now()) !== undefined;
    },
    async close() {
      await sweeper.stop();
      await signer.close?.();
    },
  };
}

/** What the issuance-side routes share (built once by the issuance module). */
import type Stripe from 'stripe';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Authenticator } from './accounts/authenticate.js';
import type { ProxyConfig } from './config.js';
import type { KeyManager } from './keys/keyManager.js';
import type { IssuanceStore } from './store/issuanceStore.js';

export interface IssuanceContext {
  config: ProxyConfig;
  store: IssuanceStore;
  auth: Authenticator;
  logger: Logger;
  metrics: Registry;
  now: () => number;
  keys: KeyManager;
  stripe: Stripe | undefined;
  pepper: string;
}

/**
 * The contract between the proxy's skeleton (config, app, server, keys) and the
 * role modules it mounts: `issuance` (issuance side) and `redemption`
 * (anonymous side). One binary, roles chosen by configuration.
 */
import type Router from '@koa/router';
import type { Keyring } from '@llmtor/protocol';
import type { Redis, Cluster } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

export type Role = 'issuance' | 'redemption';

export interface AppDeps {
  /** Structured logger; secrets are redacted by configuration. Redemption must not log identifying data at all. */
  logger: Logger;
  /** Prometheus registry served at /metrics. */
  metrics: Registry;
  /** The current keys (public parts and windows); replaced when key files change. */
  keyring: () => Keyring;
  /** Issuer name used in the TokenChallenge that every LLM-Tor token is made for. */
  issuerName: string;
  /** Milliseconds since the epoch; injectable so tests can move time. */
  now: () => number;
  /** Redis connection, or undefined for the embedded in-process store. */
  redis: Redis | Cluster | undefined;
}

export interface RoleModule {
  readonly role: Role;
  /** Routes this role serves. */
  router: Router;
  /** Readiness beyond Redis and keys (e.g. a signer pool started). */
  ready?(): Promise<boolean>;
  /** Stop background work; called on graceful shutdown after the server stopped accepting. */
  close?(): Promise<void>;
}

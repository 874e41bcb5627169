/**
 * Builds the ioredis client of one role from its target: `Redis` for a single
 * node or a Sentinel-managed master, `Cluster` for a cluster. Scripts are
 * single-slot (hash-tagged keys), so both work with every store.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { ConfigError } from '../config.js';
import type { RedisRole, RedisTarget } from './redisConfig.js';

export type RedisClient = Redis | Cluster;

/** Common client behaviour: fail a command after 2 reconnect attempts instead of queueing forever. */
const COMMON: RedisOptions = { maxRetriesPerRequest: 2, connectTimeout: 5_000, enableAutoPipelining: false };

/**
 * True for the errors ioredis raises when the server cannot be reached or stops answering
 * (refused or dropped connection, retries exhausted, command timeout) — as opposed to an
 * answer from Redis itself (a ReplyError) or a bug of ours.
 */
export function isRedisUnreachable(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  if (e.name === 'MaxRetriesPerRequestError' || e.name === 'ClusterAllFailedError') return true;
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EPIPE') return true;
  return /^(Connection is closed|Command timed out|Stream isn't writeable|None of startup nodes is available|Failed to refresh slots cache)/.test(e.message);
}

function tlsOptions(t: RedisTarget, role: RedisRole): ConnectionOptions | undefined {
  const on = t.tls || (t.url?.startsWith('rediss://') ?? false);
  if (!on) return undefined;
  if (!t.tlsCaFile) return {};
  try {
    return { ca: readFileSync(t.tlsCaFile) };
  } catch (e) {
    throw new ConfigError([`setting redis.${role}.tlsCaFile (env REDIS_TLS_CA_FILE or ${role.toUpperCase()}_REDIS_TLS_CA_FILE): cannot read ${t.tlsCaFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
}

/** The client for a target that names a server (see hasServer). Connects in the background. */
export function createRedisClient(t: RedisTarget, role: RedisRole): RedisClient {
  const tls = tlsOptions(t, role);
  if (t.clusterNodes) {
    const redisOptions: RedisOptions = { ...COMMON, ...(t.username ? { username: t.username } : {}), ...(t.password ? { password: t.password } : {}), ...(tls ? { tls } : {}) };
    const options: ClusterOptions = {
      redisOptions,
      enableAutoPipelining: false,
      // Writes and Lua scripts go to masters; reads too, so a read never sees a replica lagging behind a debit.
      scaleReads: 'master',
      slotsRefreshTimeout: 2_000,
      // With TLS the certificates name the hosts: connect by the announced name, not a resolved address (e.g. AWS, Azure).
      ...(tls ? { dnsLookup: (address: string, cb: (err: Error | null, address: string) => void) => cb(null, address) } : {}),
    };
    return new Cluster(t.clusterNodes, options);
  }
  if (t.sentinels) {
    return new Redis({
      ...COMMON,
      sentinels: t.sentinels,
      name: t.sentinelName!,
      ...(t.sentinelPassword ? { sentinelPassword: t.sentinelPassword } : {}),
      ...(t.username ? { username: t.username } : {}),
      ...(t.password ? { password: t.password } : {}),
      ...(t.db !== undefined ? { db: t.db } : {}),
      ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
    });
  }
  if (!t.url) throw new Error(`redis.${role}: no server configured`);
  return new Redis(t.url, { ...COMMON, ...(tls ? { tls } : {}) });
}

/** Logs connection errors of a client, at most once every few seconds (ioredis emits one per reconnect attempt). */
export function logRedisErrors(r: RedisClient, logger: Logger, role: RedisRole): void {
  let last = 0;
  const log = (e: Error) => {
    if (Date.now() - last > 5_000) logger.error({ role, err: e.message }, 'Redis connection error');
    last = Date.now();
  };
  r.on('error', log);
  if (r instanceof Cluster) r.on('node error', log);
}

/** Closes a client politely, or cuts it if QUIT does not go through. */
export async function closeRedisClient(r: RedisClient): Promise<void> {
  try {
    await r.quit();
  } catch {
    r.disconnect();
  }
}

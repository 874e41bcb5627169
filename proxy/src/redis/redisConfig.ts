/**
 * Where a role's Redis is: one of a single node (`url`), a Sentinel-managed
 * master (`sentinels` + `sentinelName`) or a Cluster (`clusterNodes`), with
 * optional credentials and TLS. Each role (issuance, redemption) has its own
 * target, so redemption pods can use a server without account data.
 *
 * Environment: the shared `REDIS_*` variables apply to both roles; a role that
 * has any `ISSUANCE_REDIS_*` (resp. `REDEMPTION_REDIS_*`) variable reads only
 * its own variables. Env settings of a role that name a server replace that
 * role's `redis.<role>` object of the config file; the others are merged in.
 */
import { z } from 'zod';
import { parseEnvValue, type EnvKind } from '../envValue.js';

export const REDIS_ROLES = ['issuance', 'redemption'] as const;
export type RedisRole = (typeof REDIS_ROLES)[number];

export interface HostPort {
  host: string;
  port: number;
}

const HOST_PORT_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

/** "host:port" (IPv6 as "[::1]:6379") → { host, port }. */
export const hostPortSchema = z.string().transform((s, ctx): HostPort => {
  const m = HOST_PORT_RE.exec(s.trim());
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: 'must be host:port (e.g. redis-node-0.redis:26379 or [::1]:6379)' });
    return z.NEVER;
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
});

const redisUrl = z.string().regex(/^rediss?:\/\/[^/?#]/, 'must be a redis:// or rediss:// URL');

export const redisTargetSchema = z
  .object({
    /** Single node (or a managed endpoint): redis://[user:password@]host:port[/db]; rediss:// for TLS. */
    url: redisUrl.optional(),
    /** Sentinels that watch the master (host:port each). */
    sentinels: z.array(hostPortSchema).min(1).optional(),
    /** Master group name the Sentinels monitor (`sentinel monitor <name> …`). */
    sentinelName: z.string().min(1).optional(),
    /** Password of the Sentinels themselves (their `requirepass`), if any. */
    sentinelPassword: z.string().min(1).optional(),
    /** Cluster seed nodes (host:port each); the rest of the cluster is discovered. */
    clusterNodes: z.array(hostPortSchema).min(1).optional(),
    /** ACL user name (Redis 6+), for sentinels and clusterNodes (in a url put it in the URL). */
    username: z.string().min(1).optional(),
    /** Password of the data nodes (`requirepass` / ACL), for sentinels and clusterNodes (in a url put it in the URL). */
    password: z.string().min(1).optional(),
    /** Database number with sentinels (in a url: the path; a cluster has only database 0). */
    db: z.number().int().min(0).max(15).optional(),
    /** TLS for sentinels (to the Sentinels and the master) and clusterNodes; a url uses rediss:// instead. */
    tls: z.boolean().default(false),
    /** PEM file of the CA that signed the servers' certificates (default: the system's CAs). */
    tlsCaFile: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    const topologies = (['url', 'sentinels', 'clusterNodes'] as const).filter((k) => t[k] !== undefined);
    if (topologies.length > 1) issue(topologies[1]!, `set only one of url, sentinels or clusterNodes (${topologies[0]} is set too)`);
    const kind = topologies[0];
    if (t.sentinels && !t.sentinelName) issue('sentinelName', 'required with sentinels: the master group name the Sentinels monitor (e.g. mymaster)');
    if (!t.sentinels) {
      if (t.sentinelName) issue('sentinelName', 'only used with sentinels');
      if (t.sentinelPassword) issue('sentinelPassword', 'only used with sentinels');
    }
    if (!kind) {
      for (const k of ['username', 'password', 'db', 'tlsCaFile'] as const) if (t[k] !== undefined) issue(k, 'has no effect without url, sentinels or clusterNodes');
      if (t.tls) issue('tls', 'has no effect without url, sentinels or clusterNodes');
      return;
    }
    if (kind === 'url') {
      if (!URL.canParse(t.url!.replace(/^rediss?:/, 'http:'))) issue('url', 'is not a valid URL (percent-encode special characters in the password)');
      if (t.username !== undefined || t.password !== undefined) issue(t.password !== undefined ? 'password' : 'username', 'with a url, put the credentials in the URL (redis://user:password@host:6379)');
      if (t.db !== undefined) issue('db', 'with a url, put the database in the URL path (redis://host:6379/1)');
      if (t.tls && !t.url!.startsWith('rediss://')) issue('tls', 'with a url, use a rediss:// URL for TLS');
    }
    if (kind === 'clusterNodes' && t.db !== undefined && t.db !== 0) issue('db', 'a Redis Cluster has only database 0');
    const tls = t.tls || (t.url?.startsWith('rediss://') ?? false);
    if (t.tlsCaFile && !tls) issue('tlsCaFile', 'needs TLS (tls: true, or a rediss:// URL)');
  });

export type RedisTarget = z.infer<typeof redisTargetSchema>;
export type RedisTargetInput = z.input<typeof redisTargetSchema>;

export const redisSectionSchema = z
  .object({
    /** Account data (issuance side). No server = in-process store (single process, not durable). */
    issuance: redisTargetSchema.default({}),
    /** Spent tokens (anonymous side); a separate server keeps redemption pods away from account data. */
    redemption: redisTargetSchema.default({}),
  })
  .strict()
  .default({});

/** True if the target names a server (else the role uses its in-process store). */
export function hasServer(t: RedisTarget): boolean {
  return t.url !== undefined || t.sentinels !== undefined || t.clusterNodes !== undefined;
}

export function describeTarget(t: RedisTarget): string {
  if (t.clusterNodes) return `cluster (${t.clusterNodes.length} seed node${t.clusterNodes.length > 1 ? 's' : ''})`;
  if (t.sentinels) return `sentinel master "${t.sentinelName ?? ''}" (${t.sentinels.length} sentinel${t.sentinels.length > 1 ? 's' : ''})`;
  if (t.url) return t.url.startsWith('rediss://') ? 'single node (TLS)' : 'single node';
  return 'in-process';
}

/** Variable name (without role prefix) → field of a target, and how to read it. */
const FIELDS: readonly [string, keyof RedisTargetInput, EnvKind][] = [
  ['REDIS_URL', 'url', 'string'],
  ['REDIS_SENTINELS', 'sentinels', 'list'],
  ['REDIS_SENTINEL_NAME', 'sentinelName', 'string'],
  ['REDIS_SENTINEL_PASSWORD', 'sentinelPassword', 'string'],
  ['REDIS_CLUSTER_NODES', 'clusterNodes', 'list'],
  ['REDIS_USERNAME', 'username', 'string'],
  ['REDIS_PASSWORD', 'password', 'string'],
  ['REDIS_DB', 'db', 'int'],
  ['REDIS_TLS', 'tls', 'bool'],
  ['REDIS_TLS_CA_FILE', 'tlsCaFile', 'string'],
];
const SERVER_FIELDS = new Set(['url', 'sentinels', 'clusterNodes']);

const prefixOf = (role: RedisRole) => `${role.toUpperCase()}_`;

/** Every environment variable of the Redis settings and its config path (for error messages and docs). */
export const REDIS_ENV_NAMES: readonly [string, string[]][] = REDIS_ROLES.flatMap((role) =>
  FIELDS.flatMap(([name, field]) => [
    [name, ['redis', role, field]] as [string, string[]],
    [`${prefixOf(role)}${name}`, ['redis', role, field]] as [string, string[]],
  ]),
);

export interface RedisEnv {
  /** Per role: the values read, and whether they name a server (then they replace the file's target). */
  roles: Partial<Record<RedisRole, { values: Record<string, unknown>; namesServer: boolean }>>;
}

const isSet = (env: NodeJS.ProcessEnv, name: string) => env[name] !== undefined && env[name] !== '';

/** Reads the Redis variables of both roles (see the module comment for the rules). */
export function redisFromEnv(env: NodeJS.ProcessEnv, problems: string[]): RedisEnv {
  const out: RedisEnv = { roles: {} };
  const sharedServer = FIELDS.filter(([n, f]) => SERVER_FIELDS.has(f) && isSet(env, n)).map(([n]) => n);
  for (const role of REDIS_ROLES) {
    const p = prefixOf(role);
    const own = FIELDS.some(([n]) => isSet(env, `${p}${n}`));
    const prefix = own ? p : '';
    const values: Record<string, unknown> = {};
    let namesServer = false;
    for (const [n, field, kind] of FIELDS) {
      const name = `${prefix}${n}`;
      const raw = env[name];
      if (raw === undefined || raw === '') continue;
      const v = parseEnvValue(name, raw, kind, problems);
      if (v === undefined) continue;
      values[field] = v;
      if (SERVER_FIELDS.has(field)) namesServer = true;
    }
    if (own && !namesServer && sharedServer.length > 0) {
      problems.push(
        `${p}REDIS_* variables are set, so the ${role} role reads only those and ignores ${sharedServer.join(', ')}; ` +
          `also set ${p}REDIS_URL, ${p}REDIS_SENTINELS or ${p}REDIS_CLUSTER_NODES`,
      );
    }
    if (Object.keys(values).length > 0) out.roles[role] = { values, namesServer };
  }
  return out;
}

/**
 * Overlays the Redis env values on the file's `redis` section: a role whose
 * env names a server gets exactly the env target; otherwise env values are
 * merged over the file's target.
 */
export function overlayRedisEnv(fileRedis: unknown, env: RedisEnv): Record<string, unknown> | undefined {
  const base = typeof fileRedis === 'object' && fileRedis !== null && !Array.isArray(fileRedis) ? { ...(fileRedis as Record<string, unknown>) } : undefined;
  if (Object.keys(env.roles).length === 0) return base;
  const out: Record<string, unknown> = base ?? {};
  for (const role of REDIS_ROLES) {
    const r = env.roles[role];
    if (!r) continue;
    const fromFile = out[role];
    const fileTarget = typeof fromFile === 'object' && fromFile !== null && !Array.isArray(fromFile) ? (fromFile as Record<string, unknown>) : {};
    out[role] = r.namesServer ? { ...r.values } : { ...fileTarget, ...r.values };
  }
  return out;
}

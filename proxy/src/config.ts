/**
 * Proxy configuration: an optional JSON file (`LLMTOR_CONFIG_FILE`) overlaid by
 * environment variables, validated with zod at start. Every wrong setting gets
 * one line naming the setting (and its environment variable) and what is
 * expected, so an operator can fix them all in one go.
 *
 * The redemption role's own section (`redemption` in the file) is validated by
 * that module's schema when the role is enabled (see stack.ts); here it is kept
 * as an opaque object.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseEnvValue, type EnvKind } from './envValue.js';
import { hasServer, overlayRedisEnv, REDIS_ENV_NAMES, redisFromEnv, redisSectionSchema } from './redis/redisConfig.js';

const ROLES = ['issuance', 'redemption'] as const;

const packSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, 'pack id must be 1-40 of a-z 0-9 _ -'),
    /** Credits (= tokens) the pack buys. */
    credits: z.number().int().min(1).max(1_000_000),
    /** Price in the currency's minor unit (cents), as Stripe expects. */
    amount: z.number().int().min(1),
    currency: z.string().regex(/^[a-z]{3}$/, 'currency must be a lowercase ISO 4217 code such as "eur"'),
    /** Product name shown on the Stripe Checkout page. */
    name: z.string().min(1).max(120),
  })
  .strict();
export type CreditPack = z.infer<typeof packSchema>;

const DEFAULT_PACKS: CreditPack[] = [
  { id: 'small', credits: 500, amount: 500, currency: 'eur', name: 'LLM-Tor 500 credits' },
  { id: 'large', credits: 2500, amount: 2000, currency: 'eur', name: 'LLM-Tor 2500 credits' },
];

export const configSchema = z
  .object({
    /** Which APIs this process serves: one image, roles chosen by configuration. */
    roles: z.array(z.enum(ROLES)).min(1).default(['issuance', 'redemption']),
    listen: z
      .object({ host: z.string().min(1).default('0.0.0.0'), port: z.number().int().min(0).max(65535).default(8080) })
      .strict()
      .default({}),
    /** Trust X-Forwarded-For from the ingress (needed for per-IP limits behind a load balancer). */
    trustProxy: z.boolean().default(false),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Issuer name inside every TokenChallenge (RFC 9577); must be the same on every pod. */
    issuerName: z.string().min(1).max(255).default('llmtor.local'),
    /** Absolute base URL clients reach the issuer at; without it the directory gives a relative issuer-request-uri. */
    publicBaseUrl: z.string().url().optional(),
    /** Path of the issuance endpoint (announced as issuer-request-uri). */
    issuerRequestPath: z.string().regex(/^\/[A-Za-z0-9/_-]*$/).default('/token-request'),
    directoryMaxAgeSeconds: z.number().int().min(0).max(86_400).default(300),
    /** Longest wait for in-flight requests on shutdown before connections are cut. */
    shutdownGraceMs: z.number().int().min(0).max(600_000).default(25_000),
    /** Per role: single node (url), Sentinel (sentinels + sentinelName) or Cluster (clusterNodes); see redis/redisConfig.ts. */
    redis: redisSectionSchema,
    keys: z
      .object({
        /** Directory of key files written by the operator (protocol/src/keyFile.ts). Unset = ephemeral demo keys. */
        dir: z.string().min(1).optional(),
        /** Poll interval (besides fs.watch, which misses some mounted-volume updates). */
        pollIntervalMs: z.number().int().min(100).default(10_000),
        /** Local key-encryption key (PEM file) for envelope-encrypted key files. */
        kekFile: z.string().min(1).optional(),
        kekName: z.string().min(1).default('local'),
        /** Azure Key Vaults whose keys may unwrap the key files' data keys (https://<name>.vault.azure.net); credential: DefaultAzureCredential. */
        keyVaultUrls: z.array(z.string().url().regex(/^https:\/\/[^/]+\/?$/, 'must be a vault URL such as https://my-vault.vault.azure.net')).min(1).optional(),
      })
      .strict()
      .default({}),
    accounts: z
      .object({
        /** Server secret for the keyed hash of account keys. Required with Redis (hashes must survive restarts). */
        pepper: z.string().min(32, 'must be at least 32 characters of random data').optional(),
        /** Failed authentications per client IP per minute (kept in memory only, never stored). */
        authFailuresPerIpPerMinute: z.number().int().min(1).default(30),
        /** Failed authentications per minute across all clients and pods; above it, addresses that failed in the minute get 429 (others are still checked). */
        authFailuresGlobalPerMinute: z.number().int().min(1).default(2_000),
        accountCreationsPerIpPerMinute: z.number().int().min(1).default(10),
      })
      .strict()
      .default({}),
    /** Separate credential for /v1/admin/*; unset = admin API off. */
    adminToken: z.string().min(32, 'must be at least 32 characters').optional(),
    stripe: z
      .object({
        secretKey: z.string().min(1).optional(),
        webhookSecret: z.string().min(1).optional(),
        /** For a local stand-in (stripe-mock): http://127.0.0.1:12111. Unset = api.stripe.com. */
        apiBase: z.string().url().optional(),
        successUrl: z.string().url().default('https://llmtor.invalid/purchase/success'),
        cancelUrl: z.string().url().default('https://llmtor.invalid/purchase/cancel'),
        /** Oldest webhook timestamp accepted (Stripe's default: 300 s). */
        webhookToleranceSeconds: z.number().int().min(1).max(3600).default(300),
      })
      .strict()
      .default({}),
    packs: z
      .array(packSchema)
      .min(1)
      .default(DEFAULT_PACKS)
      .refine((p) => new Set(p.map((x) => x.id)).size === p.length, 'pack ids must be unique'),
    issuance: z
      .object({
        maxBatchSize: z.number().int().min(1).max(10_000).default(1_000),
        /** Issuance requests per account per minute (batches count once). */
        requestsPerMinute: z.number().int().min(1).default(120),
        /** Extra transient abuse tokens per account per epoch (theft/revocation), beyond the first. */
        transientReissuesPerEpoch: z.number().int().min(0).max(100).default(2),
        /** Abuse tokens (permanent, transient) only for accounts with a paid purchase: else a fresh pseudonym is free and blacklists are a formality. */
        abuseTokensRequirePurchase: z.boolean().default(true),
        /** Whether an admin grant counts as a purchase for abuse tokens (the operator vouches for whoever it grants to). */
        grantsCountAsPurchase: z.boolean().default(false),
        /** How long a retry with the same Idempotency-Key gets the same signatures. */
        idempotencyTtlSeconds: z.number().int().min(60).max(7 * 86_400).default(86_400),
        /** A request still "pending" after this long (its pod died) may be taken over by a retry. */
        pendingTakeoverMs: z.number().int().min(1_000).default(30_000),
        /** A request still "pending" this long after its last attempt (pod died, no retry came) gets its credits back from the sweeper. */
        abandonedAfterMs: z.number().int().min(2_000).default(300_000),
        /** How often each pod looks for abandoned requests (the refund itself is atomic, so pods may overlap). */
        sweepIntervalMs: z.number().int().min(1_000).max(3_600_000).default(30_000),
        /** A key still signs this long after its issuance end (requests in flight at a rotation, client clock skew); never past its redemption end. */
        keyGraceMs: z.number().int().min(0).max(3_600_000).default(120_000),
        /** Signer worker threads (default: available cores). */
        signerThreads: z.number().int().min(1).max(256).optional(),
      })
      .strict()
      .default({}),
    /**
     * Serve the interactive protocol demo at /demo (issuance role; docs/demo.md). Its free
     * demo credits exist only on the embedded defaults (ephemeral keys, no Redis).
     */
    demo: z.boolean().default(false),
    /** Redemption role settings, validated by the redemption module's own schema. */
    redemption: z.record(z.unknown()).default({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.roles.includes('issuance') && hasServer(c.redis.issuance) && !c.accounts.pepper) {
      ctx.addIssue({ code: 'custom', path: ['accounts', 'pepper'], message: 'required when account data is in Redis (else no account key verifies after a restart)' });
    }
    if (c.stripe.secretKey && !c.stripe.webhookSecret) {
      ctx.addIssue({ code: 'custom', path: ['stripe', 'webhookSecret'], message: 'required with stripe.secretKey (purchases would never be credited)' });
    }
    if (c.issuance.abandonedAfterMs <= c.issuance.pendingTakeoverMs) {
      ctx.addIssue({ code: 'custom', path: ['issuance', 'abandonedAfterMs'], message: 'must be longer than issuance.pendingTakeoverMs (a retry should take over a dead pod\'s request before its credits are given back)' });
    }
    if (c.issuance.abandonedAfterMs >= c.issuance.idempotencyTtlSeconds * 1000) {
      ctx.addIssue({ code: 'custom', path: ['issuance', 'abandonedAfterMs'], message: 'must be shorter than issuance.idempotencyTtlSeconds (else the request record expires before its credits are given back)' });
    }
    if (c.issuerRequestPath.startsWith('/v1/') || c.issuerRequestPath.startsWith('/.well-known/')) {
      ctx.addIssue({ code: 'custom', path: ['issuerRequestPath'], message: 'must not collide with /v1/ or /.well-known/' });
    }
  });

export type ProxyConfig = z.infer<typeof configSchema>;
export type ProxyConfigInput = z.input<typeof configSchema>;

/** Environment variable → config path, and how to read it (Redis variables: redis/redisConfig.ts). */
const ENV: readonly [string, string[], EnvKind][] = [
  ['LLMTOR_ROLES', ['roles'], 'list'],
  ['LLMTOR_HOST', ['listen', 'host'], 'string'],
  ['PORT', ['listen', 'port'], 'int'],
  ['LLMTOR_PORT', ['listen', 'port'], 'int'],
  ['LLMTOR_TRUST_PROXY', ['trustProxy'], 'bool'],
  ['LLMTOR_LOG_LEVEL', ['logLevel'], 'string'],
  ['LLMTOR_ISSUER_NAME', ['issuerName'], 'string'],
  ['LLMTOR_PUBLIC_URL', ['publicBaseUrl'], 'string'],
  ['LLMTOR_SHUTDOWN_GRACE_MS', ['shutdownGraceMs'], 'int'],
  ['LLMTOR_KEY_DIR', ['keys', 'dir'], 'string'],
  ['LLMTOR_KEY_POLL_MS', ['keys', 'pollIntervalMs'], 'int'],
  ['LLMTOR_KEK_FILE', ['keys', 'kekFile'], 'string'],
  ['LLMTOR_KEK_NAME', ['keys', 'kekName'], 'string'],
  ['LLMTOR_KEYVAULT_URL', ['keys', 'keyVaultUrls'], 'list'],
  ['LLMTOR_ACCOUNT_PEPPER', ['accounts', 'pepper'], 'string'],
  ['LLMTOR_AUTH_FAILURES_PER_IP', ['accounts', 'authFailuresPerIpPerMinute'], 'int'],
  ['LLMTOR_AUTH_FAILURES_GLOBAL', ['accounts', 'authFailuresGlobalPerMinute'], 'int'],
  ['ADMIN_TOKEN', ['adminToken'], 'string'],
  ['STRIPE_SECRET_KEY', ['stripe', 'secretKey'], 'string'],
  ['STRIPE_WEBHOOK_SECRET', ['stripe', 'webhookSecret'], 'string'],
  ['STRIPE_API_BASE', ['stripe', 'apiBase'], 'string'],
  ['STRIPE_SUCCESS_URL', ['stripe', 'successUrl'], 'string'],
  ['STRIPE_CANCEL_URL', ['stripe', 'cancelUrl'], 'string'],
  ['LLMTOR_PACKS', ['packs'], 'json'],
  ['LLMTOR_MAX_BATCH', ['issuance', 'maxBatchSize'], 'int'],
  ['LLMTOR_ISSUANCE_PER_MINUTE', ['issuance', 'requestsPerMinute'], 'int'],
  ['LLMTOR_TRANSIENT_REISSUES', ['issuance', 'transientReissuesPerEpoch'], 'int'],
  ['LLMTOR_ABUSE_TOKENS_REQUIRE_PURCHASE', ['issuance', 'abuseTokensRequirePurchase'], 'bool'],
  ['LLMTOR_GRANTS_COUNT_AS_PURCHASE', ['issuance', 'grantsCountAsPurchase'], 'bool'],
  ['LLMTOR_SIGNER_THREADS', ['issuance', 'signerThreads'], 'int'],
  ['LLMTOR_ABANDONED_AFTER_MS', ['issuance', 'abandonedAfterMs'], 'int'],
  ['LLMTOR_ISSUANCE_KEY_GRACE_MS', ['issuance', 'keyGraceMs'], 'int'],
  ['LLMTOR_SWEEP_INTERVAL_MS', ['issuance', 'sweepIntervalMs'], 'int'],
  ['LLMTOR_DEMO', ['demo'], 'bool'],
];

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

function envNamesFor(path: readonly (string | number)[]): string[] {
  const p = path.join('.');
  return [...ENV, ...REDIS_ENV_NAMES].filter(([, to]) => p === to.join('.') || p.startsWith(`${to.join('.')}.`)).map(([n]) => n);
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let o = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof o[k] !== 'object' || o[k] === null || Array.isArray(o[k])) o[k] = {};
    o = o[k] as Record<string, unknown>;
  }
  o[path[path.length - 1]!] = value;
}

/** Reads env values into the config shape; a value that does not even parse becomes a problem, not a crash. */
function fromEnv(env: NodeJS.ProcessEnv, problems: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, path, kind] of ENV) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const v = parseEnvValue(name, raw, kind, problems);
    if (v !== undefined) setPath(out, path, v);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

/**
 * Loads the configuration: file (if `LLMTOR_CONFIG_FILE` or `opts.file`), then
 * environment, then `overrides` (tests, the local stack). Throws ConfigError
 * listing every problem.
 */
export function loadConfig(opts: { env?: NodeJS.ProcessEnv; file?: string; overrides?: ProxyConfigInput } = {}): ProxyConfig {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  let fileDoc: Record<string, unknown> = {};
  const file = opts.file ?? env.LLMTOR_CONFIG_FILE;
  if (file) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (!isPlainObject(parsed)) problems.push(`LLMTOR_CONFIG_FILE ${file}: must contain a JSON object`);
      else fileDoc = parsed;
    } catch (e) {
      problems.push(`LLMTOR_CONFIG_FILE ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'not readable JSON'}`);
    }
  }
  const withEnv = deepMerge(fileDoc, fromEnv(env, problems));
  const redis = overlayRedisEnv(fileDoc.redis, redisFromEnv(env, problems));
  if (redis) withEnv.redis = redis;
  const merged = deepMerge(withEnv, (opts.overrides ?? {}) as Record<string, unknown>);
  const r = configSchema.safeParse(merged);
  if (!r.success) problems.push(...formatZodIssues(r.error));
  if (problems.length > 0 || !r.success) throw new ConfigError(problems);
  return r.data;
}

/** One readable line per zod issue: `setting a.b (env X): message`. */
export function formatZodIssues(err: z.ZodError, prefix: (string | number)[] = []): string[] {
  return err.issues.map((i) => {
    const path = [...prefix, ...i.path];
    const names = envNamesFor(path);
    const where = path.length ? `setting ${path.join('.')}` : 'configuration';
    return `${where}${names.length ? ` (env ${names.join(' or ')})` : ''}: ${i.message}`;
  });
}

/** The issuer-request-uri announced in the directory. */
export function issuerRequestUri(c: ProxyConfig): string {
  return c.publicBaseUrl ? new URL(c.issuerRequestPath, c.publicBaseUrl).toString() : c.issuerRequestPath;
}

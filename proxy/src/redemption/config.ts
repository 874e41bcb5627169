/**
 * Configuration of the anonymous redemption side (zod: validated at the edge).
 * Defaults make the embedded demo work with no account anywhere: one model served
 * by the in-process local stand-in upstream (canned text) and the local rule list
 * for moderation.
 */
import { z } from 'zod';

/** How the allowlisted body is adapted for one provider's OpenAI-compatible endpoint. */
export const requestTransformSchema = z
  .object({
    /** Name of the field that caps output tokens at this provider. */
    maxTokensField: z.enum(['max_tokens', 'max_completion_tokens']).default('max_tokens'),
    /** Allowlisted fields this provider rejects (dropped before forwarding). */
    dropFields: z.array(z.string()).default([]),
    /** Send `stream_options: { include_usage: true }` on streamed requests (OpenAI, vLLM); some providers reject it. */
    streamUsage: z.boolean().default(false),
  })
  .strict();
export type RequestTransform = z.infer<typeof requestTransformSchema>;

const httpProviderSchema = z
  .object({
    kind: z.literal('openai-compatible').default('openai-compatible'),
    /** Base URL up to and including the version path, e.g. https://api.openai.com/v1,
     * https://generativelanguage.googleapis.com/v1beta/openai, https://api.anthropic.com/v1, http://vllm:8000/v1. */
    baseUrl: z.string().url(),
    /** The proxy's own keys; rotated round-robin and on 429. Empty for servers without auth (local vLLM/Ollama). */
    apiKeys: z.array(z.string().min(1)).default([]),
    /** `authorization` sends `Authorization: Bearer <key>`; `api-key` sends `api-key: <key>` (Azure OpenAI). */
    authHeader: z.enum(['authorization', 'api-key']).default('authorization'),
    transform: requestTransformSchema.default({}),
    /** No response headers within this time → the request fails as a timeout (the token stays retryable). */
    timeoutMs: z.number().int().positive().default(60_000),
    /** Longest silence between two streamed chunks. */
    idleTimeoutMs: z.number().int().positive().default(120_000),
  })
  .strict();

const standInProviderSchema = z
  .object({
    /** The in-process local stand-in (canned text, real SSE). Only for the demo and tests: answers are not from an LLM. */
    kind: z.literal('local-stand-in'),
    transform: requestTransformSchema.default({}),
    timeoutMs: z.number().int().positive().default(10_000),
    idleTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict();

export const providerSchema = z.union([standInProviderSchema, httpProviderSchema]);
export type ProviderConfig = z.infer<typeof providerSchema>;

export const modelSchema = z
  .object({
    /** Public model id (what clients send as `model` and see in /v1/models). */
    id: z.string().min(1).max(200),
    /** Name of an entry in `providers`. */
    provider: z.string().min(1),
    /** Model name sent upstream (default: `id`). */
    upstreamModel: z.string().min(1).optional(),
    /** Credits per request (per started size allowance). */
    priceCredits: z.number().int().min(1).max(64).default(1),
    /** Request bytes one credit covers: k = priceCredits × ceil(bodyBytes / bytesPerCredit). */
    bytesPerCredit: z.number().int().min(1024).default(30_000),
    /** Upper bound forced on max_tokens (cost control); unset = the client's value passes. */
    maxOutputTokens: z.number().int().positive().optional(),
    ownedBy: z.string().default('llmtor'),
  })
  .strict();
export type ModelConfig = z.infer<typeof modelSchema>;

export const localRuleSchema = z
  .object({
    id: z.string().min(1),
    category: z.string().min(1),
    /** Case-insensitive regular expression (JavaScript syntax) matched against each text part. */
    pattern: z.string().min(1),
  })
  .strict();
export type LocalRule = z.infer<typeof localRuleSchema>;

/** A conservative default list; operators replace it. The marker rule lets anyone check moderation end to end. */
export const DEFAULT_LOCAL_RULES: LocalRule[] = [
  { id: 'test-marker', category: 'test', pattern: 'LLMTOR-MODERATION-TEST-BLOCK' },
  { id: 'csam-1', category: 'sexual/minors', pattern: '\\b(child|children|minor|underage|preteen)s?\\b[^.\\n]{0,40}\\b(porn|pornography|sexual|nude|naked)\\b' },
  { id: 'csam-2', category: 'sexual/minors', pattern: '\\b(porn|pornography|sexual|nude|naked)\\b[^.\\n]{0,40}\\b(child|children|minor|underage|preteen)s?\\b' },
];

export const moderationSchema = z.discriminatedUnion('provider', [
  z.object({ provider: z.literal('local'), rules: z.array(localRuleSchema).default(DEFAULT_LOCAL_RULES) }).strict(),
  z
    .object({
      provider: z.literal('openai'),
      baseUrl: z.string().url().default('https://api.openai.com/v1'),
      apiKey: z.string().min(1),
      model: z.string().default('omni-moderation-latest'),
      /** Optional per-category score thresholds; without them OpenAI's own `flagged` decides. */
      scoreThresholds: z.record(z.number().min(0).max(1)).default({}),
      timeoutMs: z.number().int().positive().default(10_000),
    })
    .strict(),
  z
    .object({
      provider: z.literal('azure'),
      /** https://<resource>.cognitiveservices.azure.com */
      endpoint: z.string().url(),
      apiKey: z.string().min(1),
      apiVersion: z.string().default('2024-09-01'),
      /** Block at or above this severity (FourSeverityLevels: 0, 2, 4, 6). Missing category = not checked. */
      severityThresholds: z
        .object({ Hate: z.number().int().min(0).max(7), SelfHarm: z.number().int().min(0).max(7), Sexual: z.number().int().min(0).max(7), Violence: z.number().int().min(0).max(7) })
        .partial()
        .default({ Hate: 4, SelfHarm: 4, Sexual: 4, Violence: 4 }),
      /** Azure analyses only inline images; `block` refuses http(s) image URLs, `skip` forwards them unmoderated. */
      remoteImages: z.enum(['block', 'skip']).default('block'),
      timeoutMs: z.number().int().positive().default(10_000),
    })
    .strict(),
  z.object({ provider: z.literal('none') }).strict(),
]);
export type ModerationConfig = z.infer<typeof moderationSchema>;

export const redemptionConfigSchema = z
  .object({
    models: z
      .array(modelSchema)
      .min(1)
      .default([{ id: 'llmtor-stand-in', provider: 'local-stand-in', priceCredits: 1, bytesPerCredit: 30_000, ownedBy: 'llmtor' }]),
    providers: z.record(providerSchema).default({ 'local-stand-in': { kind: 'local-stand-in' } }),
    moderation: moderationSchema.default({ provider: 'local' }),
    /** Abuse tokens (permanent + transient) on every request. `optional` is for setups without abuse-token issuance. */
    abuseTokens: z.enum(['required', 'optional']).default('required'),
    /** Requests per pseudonym (permanent token hash) per window. */
    rateLimit: z
      .object({ requests: z.number().int().positive().default(120), windowSeconds: z.number().int().positive().default(60) })
      .strict()
      .default({}),
    /** How long a retry of the same request with the same tokens gets the cached (encrypted) answer. */
    retryCacheTtlSeconds: z.number().int().positive().max(86_400).default(600),
    /** Largest answer kept for retries; a larger answer is delivered but not cached. */
    retryCacheMaxBytes: z.number().int().positive().default(1_048_576),
    /** A claim older than this (crashed pod) may be taken over by a retry of the same request. */
    inProgressLeaseSeconds: z.number().int().positive().default(300),
    /** Hard cap on a request body whatever the tokens presented. */
    maxRequestBytes: z.number().int().positive().default(4 * 1024 * 1024),
    /** Most tokens one request may carry. */
    maxTokensPerRequest: z.number().int().min(1).max(256).default(64),
    /** Redis command deadline on the request path; past it the request fails closed with 503. */
    redisTimeoutMs: z.number().int().positive().default(2_000),
    /**
     * Replication is asynchronous: a claim the primary answered can be lost when a replica that
     * had not received it is promoted, and the token is then accepted twice. With `replicas` > 0
     * a request is forwarded only after `WAIT replicas timeoutMs` confirms its claim on that many
     * replicas; else the claim is released and the client gets 503 (nothing spent). `auto`: 1
     * with Sentinel or Cluster, 0 (off) for a single node.
     */
    durableClaims: z
      .object({
        replicas: z.union([z.literal('auto'), z.number().int().min(0).max(16)]).default('auto'),
        timeoutMs: z.number().int().min(1).max(60_000).default(500),
      })
      .strict()
      .default({}),
    /** Bearer token for /admin/pseudonyms (the app may pass its own admin credential here). Unset = admin API off. */
    adminToken: z.string().min(16).optional(),
    /** Moderation flags per pseudonym after which it is blacklisted automatically (0 = never). */
    autoBlacklistAfterFlags: z.number().int().min(0).default(0),
    /** Redis key prefix, without a {hash tag}: each key carries its own, so the state spreads over a Cluster's slots. */
    keyPrefix: z.string().default('llmtor:rdm:'),
    /** Hex digits of SHA-256(token) that name its spent-set bucket (see redisStore.ts, docs/benchmarks.md). */
    spentBucketHexDigits: z.number().int().min(1).max(6).default(4),
    /**
     * Prefix of spent entries written before the bucketed shape (`<prefix>s:<hex>`); a token found
     * there is refused. Set to '' one redemption window after upgrading (they have expired by then).
     */
    legacySpentPrefix: z.string().default('llmtor:{rdm}:'),
  })
  .strict();

export type RedemptionConfig = z.infer<typeof redemptionConfigSchema>;
export type RedemptionConfigInput = z.input<typeof redemptionConfigSchema>;

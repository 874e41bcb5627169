/**
 * POST /v1/chat/completions on the anonymous side:
 *
 *   parse tokens → read body (limit from the tokens presented) → validate and
 *   allowlist → price → verify credit and abuse tokens (native RSA) → one Lua
 *   script: blacklist, replay / in-progress / conflict check, rate limit, claim
 *   of all k tokens → moderation → forward (JSON or SSE passed through as it
 *   arrives) → mark done and cache the encrypted answer for retries.
 *
 * Nothing here reads the peer address, X-Forwarded-For or any client header
 * other than Authorization and LLMTor-Abuse, and nothing request-specific is
 * logged.
 */
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { AppDeps } from '../appTypes.js';
import type { ModerationVerdict, Moderator } from '../moderation/types.js';
import { ModerationUnavailable } from '../moderation/types.js';
import { UpstreamFailure, type HttpUpstream, type UpstreamResponse } from '../upstream/httpUpstream.js';
import { upstreamBody } from '../upstream/requestTransform.js';
import { readBody } from './bodyReader.js';
import { decodeAnswer, encodeAnswer, type CachedAnswer } from './cachedAnswer.js';
import { canonicalJson, moderationInput, parseChatRequest } from './chatRequest.js';
import type { ModelConfig, RedemptionConfig, RequestTransform } from './config.js';
import { ABUSE_HEADER, type AbuseTokenCache, parseCreditTokens, verifyCreditTokens, type ChallengeContext, type Pseudonym } from './credentials.js';
import { RedemptionError } from './errors.js';
import type { Outcome, RedemptionMetrics } from './metrics.js';
import { creditsNeeded, maxBodyFor } from './pricing.js';
import { ClaimNotApplied, type RedemptionStore } from './store.js';
import { TokenSecrets } from './tokenHashes.js';

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

/** Largest upstream JSON answer accepted (beyond it the upstream is misbehaving). */
const MAX_UPSTREAM_JSON = 16 * 1024 * 1024;

const NO_RETRY = { 'x-should-retry': 'false' };

export async function handleChatCompletion(ctx: Context, rt: RedemptionRuntime): Promise<void> {
  const started = performance.now();
  let outcome: Outcome;
  let stream = false;
  try {
    const r = await redeem(ctx, rt);
    outcome = r.outcome;
    stream = r.stream;
  } catch (e) {
    outcome = respondError(ctx, rt, e);
  }
  rt.metrics.request(outcome, stream, (performance.now() - started) / 1000);
}

function respondError(ctx: Context, rt: RedemptionRuntime, e: unknown): Outcome {
  let err: RedemptionError;
  let outcome: Outcome;
  if (e instanceof RedemptionError) {
    err = e;
    outcome = outcomeOf(e);
  } else {
    // The class and the stack frames only: a message can quote input (a prompt, a token), a frame cannot.
    const stack = typeof (e as Error)?.stack === 'string' ? (e as Error).stack!.split('\n').filter((l) => /^\s+at /.test(l)).join('\n') : undefined;
    rt.logger.error({ err: { name: (e as Error)?.name, stack } }, 'redemption: unexpected error');
    err = new RedemptionError(500, 'internal_error', 'internal error; nothing was spent if the request did not reach the model');
    outcome = 'internal_error';
  }
  if (ctx.res.headersSent) {
    ctx.res.destroy();
    return outcome;
  }
  ctx.respond = true;
  ctx.status = err.status;
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  // RFC 9110 §15.5.2: every 401 carries a challenge (also abuse_tokens_required, invalid_token for LLMTor-Abuse).
  if (err.status === 401 && !ctx.response.get('www-authenticate')) ctx.set('www-authenticate', rt.challenge.wwwAuthenticate(rt.deps.keyring(), rt.deps.now()));
  ctx.set('cache-control', 'no-store');
  ctx.body = err.toBody();
  return outcome;
}

function outcomeOf(e: RedemptionError): Outcome {
  switch (e.code) {
    case 'credits_required':
      return 'needs_tokens';
    case 'invalid_token':
    case 'invalid_abuse_tokens':
    case 'abuse_tokens_required':
      return 'invalid_token';
    case 'token_spent':
      return 'conflict';
    case 'request_in_progress':
      return 'in_progress';
    case 'rate_limited':
      return 'rate_limited';
    case 'pseudonym_blocked':
      return 'blacklisted';
    case 'store_unavailable':
      return 'store_unavailable';
    case 'moderation_unavailable':
      return 'moderation_unavailable';
    case 'upstream_failed':
    case 'upstream_timeout':
    case 'upstream_busy':
      return 'upstream_failed';
    case 'upstream_rejected':
      return 'upstream_rejected';
    case 'client_closed_request':
      return 'client_gone';
    default:
      return 'bad_request';
  }
}

const modelConfigCache = new WeakMap<Map<string, ResolvedModel>, ModelConfig[]>();
/** The configured models as a list, computed once per runtime (not on every request). */
function modelConfigs(rt: RedemptionRuntime): ModelConfig[] {
  let list = modelConfigCache.get(rt.models);
  if (!list) {
    list = [...rt.models.values()].map((m) => m.config);
    modelConfigCache.set(rt.models, list);
  }
  return list;
}

function storeUnavailable(): RedemptionError {
  return new RedemptionError(503, 'store_unavailable', 'the spent-token store is unreachable; nothing was spent, retry later', { headers: { 'retry-after': '1' }, extra: { tokens_spent: false } });
}

/** The store failed with the claim possibly applied (the connection broke after sending it): say what is known. */
function storeFailedDuringClaim(leaseSeconds: number): RedemptionError {
  return new RedemptionError(
    503,
    'store_unavailable',
    `the spent-token store failed while the tokens were being claimed; nothing was forwarded. If the claim was recorded before the failure, the tokens are held for this same request: retry it unchanged (same body and tokens) to get its answer, after at most ${leaseSeconds} s (409 request_in_progress until then); otherwise they are unspent`,
    { headers: { 'retry-after': '1' }, extra: { tokens_spent: 'unknown' } },
  );
}

async function redeem(ctx: Context, rt: RedemptionRuntime): Promise<{ outcome: Outcome; stream: boolean }> {
  const { config: cfg, deps } = rt;
  const now = deps.now();
  const keyring = deps.keyring();
  const www = (): Record<string, string> => {
    return { 'www-authenticate': rt.challenge.wwwAuthenticate(keyring, now) };
  };

  const tokens = parseCreditTokens(ctx.req.headersDistinct.authorization, cfg.maxTokensPerRequest);
  const abuse = rt.abuseCache.parseHeader(ctx.get(ABUSE_HEADER) || undefined);
  const limit = maxBodyFor(modelConfigs(rt), tokens.length, cfg.maxRequestBytes);
  const raw = await readBody(
    ctx.req,
    limit,
    () =>
      new RedemptionError(
        413,
        'request_too_large',
        tokens.length === 0
          ? `request body is larger than one credit covers (${limit} bytes); send PrivateToken credentials for its size (see GET /v1/models: price_credits × ceil(bytes / bytes_per_credit))`
          : `request body is larger than the ${tokens.length} token(s) presented cover (at most ${limit} bytes)`,
        { headers: { connection: 'close', ...(tokens.length === 0 ? www() : {}) } },
      ),
  );
  const req = parseChatRequest(raw);
  const stream = req.stream === true;
  const model = rt.models.get(req.model);
  if (!model) throw new RedemptionError(404, 'model_not_found', `model ${JSON.stringify(req.model.slice(0, 80))} is not served here; GET /v1/models lists the models`, { headers: NO_RETRY });
  const k = creditsNeeded(model.config, raw.length);
  if (tokens.length < k) {
    throw new RedemptionError(
      401,
      'credits_required',
      `this request needs ${k} credit token(s) (${model.config.priceCredits} per ${model.config.bytesPerCredit} bytes of request, body is ${raw.length} bytes); ${tokens.length} presented. Send them as Authorization: PrivateToken token="<t1>", additional-tokens="<t2>,<t3>,…"`,
      { headers: { ...www(), ...NO_RETRY }, extra: { credits_needed: k, credits_presented: tokens.length } },
    );
  }
  if (tokens.length > k) {
    throw new RedemptionError(400, 'too_many_tokens', `this request needs exactly ${k} credit token(s); ${tokens.length} presented (extra tokens would be spent for nothing)`, {
      extra: { credits_needed: k, credits_presented: tokens.length },
    });
  }
  let verified;
  try {
    verified = verifyCreditTokens(tokens, keyring, now, rt.challenge.digest);
  } catch (e) {
    if (e instanceof RedemptionError && e.status === 401) throw new RedemptionError(401, e.code, e.message, { headers: { ...www(), ...NO_RETRY }, extra: e.extra });
    throw e;
  }
  let pseudonym: Pseudonym | undefined;
  if (abuse) pseudonym = rt.abuseCache.verifyHeader(abuse, keyring, now, rt.challenge.digest);
  else if (cfg.abuseTokens === 'required') {
    throw new RedemptionError(401, 'abuse_tokens_required', 'every request carries the two abuse tokens: LLMTor-Abuse: permanent=<base64url>, transient=<base64url>', { headers: NO_RETRY });
  }

  const secrets = new TokenSecrets(verified.map((v) => v.bytes));
  const binding = secrets.binding(canonicalJson(req));
  const spentIds = verified.map((v) => v.spentId);
  const expiresAt = verified.map((v) => v.redemptionEnd);
  if (!rt.store.healthy()) throw storeUnavailable();
  let claim;
  try {
    claim = await rt.store.claim({
      spentIds,
      expiresAt,
      binding,
      now,
      leaseMs: cfg.inProgressLeaseSeconds * 1000,
      ...(pseudonym ? { pseudonym: { permanent: pseudonym.permanent, transient: pseudonym.transient } } : {}),
      rateLimit: { limit: cfg.rateLimit.requests, windowMs: cfg.rateLimit.windowSeconds * 1000 },
    });
  } catch (e) {
    rt.logger.warn('redemption: spent-token store unavailable');
    throw e instanceof ClaimNotApplied ? storeUnavailable() : storeFailedDuringClaim(cfg.inProgressLeaseSeconds);
  }

  switch (claim.kind) {
    case 'blacklisted':
      throw new RedemptionError(403, 'pseudonym_blocked', 'this pseudonym (abuse tokens) is blocked; nothing was spent', { headers: NO_RETRY });
    case 'rate_limited':
      throw new RedemptionError(429, 'rate_limited', 'too many requests for this pseudonym; nothing was spent', { headers: { 'retry-after': String(Math.max(1, Math.ceil(claim.retryAfterMs / 1000))) } });
    case 'conflict':
      throw new RedemptionError(409, 'token_spent', 'a credit token in this request was already redeemed for a different request', { headers: NO_RETRY });
    case 'in_progress':
      throw new RedemptionError(409, 'request_in_progress', 'this request with these tokens is being answered right now; retry shortly to get the same answer', {
        headers: { 'retry-after': String(Math.min(5, Math.max(1, Math.ceil(claim.retryAfterMs / 1000)))) },
      });
    case 'done': {
      const plain = claim.cached ? secrets.open(claim.cached, binding) : undefined;
      const answer = plain ? decodeAnswer(plain) : undefined;
      if (!answer) {
        throw new RedemptionError(409, 'token_spent', `these tokens were already redeemed for this request and its answer is no longer kept (answers are kept ${cfg.retryCacheTtlSeconds} s, streams interrupted by the client are not kept)`, {
          headers: NO_RETRY,
        });
      }
      replay(ctx, answer, k);
      return { outcome: 'replayed', stream };
    }
    case 'unconfirmed':
      rt.logger.warn('redemption: claim not confirmed on enough Redis replicas');
      if (!claim.released) throw storeFailedDuringClaim(cfg.inProgressLeaseSeconds);
      throw new RedemptionError(
        503,
        'store_unavailable',
        `the spent-token store could not confirm the claim on a replica within ${cfg.durableClaims.timeoutMs} ms (a failover could have lost it); nothing was forwarded and the claim was undone, so nothing was spent: retry later`,
        { headers: { 'retry-after': '1' }, extra: { tokens_spent: false } },
      );
    case 'claimed':
      break;
  }
  rt.metrics.tokensSpent.inc(k);

  const finish = async (answer: CachedAnswer | undefined): Promise<void> => {
    const plain = answer ? encodeAnswer(answer) : undefined;
    const blob = plain && plain.length <= cfg.retryCacheMaxBytes ? secrets.seal(plain, binding) : undefined;
    try {
      await rt.store.finish(spentIds, expiresAt, binding, blob, cfg.retryCacheTtlSeconds * 1000);
    } catch {
      // The claim is recorded (the token cannot be spent twice); keep trying to record the finish, or a
      // retry of this request would wait out the lease and then reach the upstream a second time.
      rt.logger.warn('redemption: could not record a finished answer (store unavailable); retrying in the background');
      finishLater(rt, spentIds, expiresAt, binding, blob);
    }
  };
  const release = async (mode: 'retryable' | 'free'): Promise<void> => {
    try {
      await rt.store.release(spentIds, expiresAt, binding, mode);
    } catch {
      // Left "in progress": after the lease a retry of the same request takes it over.
      rt.logger.warn('redemption: could not release a claim (store unavailable)');
    }
  };

  const ac = new AbortController();
  const onClose = () => {
    if (!ctx.res.writableFinished) ac.abort();
  };
  ctx.res.once('close', onClose);

  let verdict: ModerationVerdict;
  try {
    verdict = await rt.moderator.moderate(moderationInput(req), ac.signal);
  } catch (e) {
    await release('retryable');
    if (e instanceof ModerationUnavailable) rt.logger.warn({ provider: rt.moderator.name }, 'redemption: moderation unavailable');
    throw new RedemptionError(503, 'moderation_unavailable', 'moderation is unavailable; nothing was forwarded and the tokens stay valid for a retry of this same request', {
      headers: { 'retry-after': '2' },
      extra: { retryable: true },
    });
  }
  if (verdict.flagged) {
    rt.metrics.moderationBlocked.inc({ provider: rt.moderator.name });
    const refusal = new RedemptionError(400, 'content_blocked', 'the request was refused by moderation and was not forwarded; the credit tokens are consumed', {
      extra: { categories: verdict.categories, moderation_provider: rt.moderator.name, credits_spent: k },
    });
    const body = Buffer.from(JSON.stringify(refusal.toBody()));
    await finish({ kind: 'refusal', status: 400, body });
    if (pseudonym) await recordFlag(rt, pseudonym);
    sendJson(ctx, 400, body, k, false);
    return { outcome: 'blocked', stream };
  }

  const upBody = upstreamBody(req, model.upstreamModel, model.transform, model.config.maxOutputTokens);
  let up: UpstreamResponse;
  try {
    up = await model.upstream.send(upBody, stream, upstreamSignal(stream, ac.signal));
  } catch (e) {
    await release('retryable');
    if (ac.signal.aborted) return { outcome: 'client_gone', stream };
    throw upstreamError(rt, model, e);
  }

  if (up.status < 200 || up.status >= 300) {
    const text = await readAll(up, 64 * 1024).catch(() => Buffer.alloc(0));
    // The provider refused the request itself (bad parameter, context too long): no answer was produced,
    // so the tokens are freed for any request. Our own key failing or anything else: retryable.
    if ([400, 404, 409, 413, 415, 422].includes(up.status)) {
      await release('free');
      throw new RedemptionError(up.status === 404 ? 400 : up.status, 'upstream_rejected', `the model provider rejected the request: ${upstreamMessage(text)}; the tokens were not spent`, {
        headers: NO_RETRY,
        extra: { tokens_spent: false },
      });
    }
    await release('retryable');
    rt.metrics.upstreamFailures.inc({ provider: model.providerName, kind: up.status >= 500 ? 'server_error' : `http_${up.status}` });
    rt.logger.warn({ provider: model.providerName, status: up.status }, 'redemption: upstream failure');
    throw new RedemptionError(502, 'upstream_failed', `the model provider answered HTTP ${up.status}; the tokens stay valid for a retry of this same request`, { extra: { retryable: true } });
  }

  if (!stream) {
    let answer: Buffer;
    try {
      answer = await readAll(up, MAX_UPSTREAM_JSON);
    } catch {
      await release('retryable');
      if (ac.signal.aborted) return { outcome: 'client_gone', stream };
      throw upstreamError(rt, model, new UpstreamFailure('unreachable', 'provider connection broke while reading the answer'));
    }
    await finish({ kind: 'json', status: 200, body: answer });
    sendJson(ctx, 200, answer, k, false);
    return { outcome: 'answered', stream };
  }

  return { outcome: await pipeStream(ctx, rt, up, ac.signal, k, finish, release, model), stream };
}

/**
 * What may cancel the upstream call (D6). A stream stops with its client (the bytes already sent
 * consume the tokens). A JSON answer does not: once forwarded it is paid for upstream, so it is read
 * to the end and cached, and the client's retry is served from the cache — cancelling it instead
 * left the tokens retryable, and each retry-and-abort cost another upstream call.
 */
function upstreamSignal(stream: boolean, clientGone: AbortSignal): AbortSignal {
  // A signal of its own per request (one shared signal would collect every request's listener).
  return stream ? clientGone : new AbortController().signal;
}

/** Finishes waiting for the store to come back, at most this many at a time (each holds its sealed answer). */
const MAX_PENDING_FINISHES = 1_000;
let pendingFinishes = 0;

/**
 * Retries a finish that failed (store unreachable) with back-off, until it succeeds, the claim is
 * no longer ours, or the lease ends (then a retry of the request may take the claim over anyway).
 */
function finishLater(rt: RedemptionRuntime, spentIds: string[], expiresAt: number[], binding: string, blob: Buffer | undefined): void {
  if (pendingFinishes >= MAX_PENDING_FINISHES) return;
  pendingFinishes++;
  const cfg = rt.config;
  const giveUpAt = Date.now() + cfg.inProgressLeaseSeconds * 1000;
  let delay = 250;
  const attempt = (): void => {
    rt.store.finish(spentIds, expiresAt, binding, blob, cfg.retryCacheTtlSeconds * 1000).then(
      () => pendingFinishes--,
      () => {
        delay = Math.min(delay * 2, 5_000);
        if (Date.now() + delay > giveUpAt) {
          pendingFinishes--;
          rt.logger.warn('redemption: gave up recording a finished answer; a retry takes the claim over after its lease');
          return;
        }
        setTimeout(attempt, delay).unref();
      },
    );
  };
  setTimeout(attempt, delay).unref();
}

async function recordFlag(rt: RedemptionRuntime, p: Pseudonym): Promise<void> {
  try {
    const n = await rt.store.flag(p.permanent, 30 * 86_400_000);
    if (rt.config.autoBlacklistAfterFlags > 0 && n >= rt.config.autoBlacklistAfterFlags) {
      await rt.store.blacklistAdd({ kind: 'transient', pseudonym: p.transient, expiresAt: p.transientRedemptionEnd });
    }
  } catch {
    rt.logger.warn('redemption: could not record a moderation flag (store unavailable)');
  }
}

function upstreamError(rt: RedemptionRuntime, model: ResolvedModel, e: unknown): RedemptionError {
  const f = e instanceof UpstreamFailure ? e : new UpstreamFailure('unreachable', 'provider request failed');
  rt.metrics.upstreamFailures.inc({ provider: model.providerName, kind: f.kind });
  rt.logger.warn({ provider: model.providerName, kind: f.kind }, 'redemption: upstream failure');
  const extra = { retryable: true };
  const msg = `${f.message}; the tokens stay valid for a retry of this same request`;
  if (f.kind === 'timeout') return new RedemptionError(504, 'upstream_timeout', msg, { extra });
  if (f.kind === 'rate_limited') return new RedemptionError(503, 'upstream_busy', msg, { headers: { 'retry-after': String(Math.max(1, f.retryAfterSeconds ?? 5)) }, extra });
  return new RedemptionError(502, 'upstream_failed', msg, { extra });
}

function upstreamMessage(text: Buffer): string {
  try {
    const m = (JSON.parse(text.toString('utf8')) as { error?: { message?: unknown } }).error?.message;
    if (typeof m === 'string') return m.slice(0, 300);
  } catch {
    /* not JSON */
  }
  return 'no details';
}

function readAll(up: UpstreamResponse, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let ended = false;
    up.body.on('data', (c: Buffer) => {
      total += c.length;
      if (total > max) {
        up.abort();
        reject(new Error('upstream answer too large'));
        return;
      }
      chunks.push(c);
    });
    up.body.once('end', () => {
      ended = true;
      resolve(Buffer.concat(chunks, total));
    });
    up.body.once('error', () => undefined);
    up.body.once('close', () => {
      if (!ended) reject(new Error('upstream closed early'));
    });
  });
}

function sendJson(ctx: Context, status: number, body: Buffer, k: number, replayed: boolean): void {
  ctx.status = status;
  ctx.set('cache-control', 'no-store');
  ctx.set('llmtor-credits-spent', String(k));
  if (replayed) ctx.set('llmtor-replay', 'true');
  if (status >= 400) ctx.set('x-should-retry', 'false');
  ctx.type = 'application/json';
  ctx.body = body;
}

function sseHeaders(k: number, replayed: boolean): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
    'llmtor-credits-spent': String(k),
  };
  if (replayed) h['llmtor-replay'] = 'true';
  return h;
}

function replay(ctx: Context, a: CachedAnswer, k: number): void {
  if (a.kind === 'sse') {
    ctx.respond = false;
    ctx.res.writeHead(200, sseHeaders(k, true));
    ctx.res.end(a.body);
    return;
  }
  sendJson(ctx, a.status, a.body, k, true);
}

/**
 * Passes the provider's SSE bytes through as they arrive (backpressure: the
 * provider is paused while the client is slow), keeping a transcript for the
 * retry cache. Client gone → the provider request is aborted at once.
 */
async function pipeStream(
  ctx: Context,
  rt: RedemptionRuntime,
  up: UpstreamResponse,
  signal: AbortSignal,
  k: number,
  finish: (a: CachedAnswer | undefined) => Promise<void>,
  release: (mode: 'retryable' | 'free') => Promise<void>,
  model: ResolvedModel,
): Promise<Outcome> {
  const res = ctx.res;
  ctx.respond = false;
  res.writeHead(200, sseHeaders(k, false));
  res.flushHeaders();
  const transcript: Buffer[] = [];
  let kept = 0;
  let keep = true;
  const max = rt.config.retryCacheMaxBytes;
  const how = await new Promise<'complete' | 'client_gone' | 'upstream_broke'>((resolve) => {
    let ended = false;
    const onAbort = () => {
      up.abort();
      resolve('client_gone');
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    up.body.on('data', (c: Buffer) => {
      if (keep) {
        kept += c.length;
        if (kept > max) {
          keep = false;
          transcript.length = 0;
        } else transcript.push(c);
      }
      if (!res.write(c)) {
        up.body.pause();
        res.once('drain', () => up.body.resume());
      }
    });
    up.body.once('end', () => {
      ended = true;
    });
    up.body.once('error', () => undefined);
    up.body.once('close', () => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) resolve('client_gone');
      else resolve(ended ? 'complete' : 'upstream_broke');
    });
  });
  if (how === 'complete') {
    res.end();
    await finish(keep ? { kind: 'sse', status: 200, body: Buffer.concat(transcript) } : undefined);
    return 'answered';
  }
  if (how === 'client_gone') {
    // Bytes of the answer went out: the tokens are consumed, and a partial transcript is not worth replaying.
    await finish(undefined);
    return 'client_gone';
  }
  rt.metrics.upstreamFailures.inc({ provider: model.providerName, kind: 'stream_broken' });
  rt.logger.warn({ provider: model.providerName, kind: 'stream_broken' }, 'redemption: upstream failure');
  await release('retryable');
  const err = new RedemptionError(502, 'upstream_failed', 'the model provider broke off the stream; the tokens stay valid for a retry of this same request', { extra: { retryable: true } });
  res.end(`data: ${JSON.stringify(err.toBody())}\n\n`);
  return 'upstream_failed';
}

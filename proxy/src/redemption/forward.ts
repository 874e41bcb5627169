/**
 * Stage 3 of a redemption: forward the claimed request. Moderate → send upstream → answer
 * (JSON read whole, or SSE passed through as it arrives) → finish the claim with the answer,
 * or release it when nothing was delivered.
 */
import { once } from 'node:events';
import type { Context } from 'koa';
import type { ModerationVerdict } from '../moderation/types.js';
import { ModerationUnavailable } from '../moderation/types.js';
import { UpstreamFailure, type UpstreamResponse } from '../upstream/httpUpstream.js';
import { upstreamBody } from '../upstream/requestTransform.js';
import type { Admission } from './admit.js';
import type { CachedAnswer } from './cachedAnswer.js';
import { moderationInput } from './chatRequest.js';
import type { Claim } from './claim.js';
import { NO_RETRY, RedemptionError } from './errors.js';
import type { Outcome } from './metrics.js';
import { sendJson, sseHeaders } from './reply.js';
import type { RedemptionRuntime } from './runtime.js';

/** Largest upstream JSON answer accepted (beyond it the upstream is misbehaving). */
const MAX_UPSTREAM_JSON = 16 * 1024 * 1024;

/** One claimed request on its way upstream: what every forwarding step reads. */
interface Forwarding {
  ctx: Context;
  runtime: RedemptionRuntime;
  admission: Admission;
  claim: Claim;
  /** Aborts when the client goes away before the answer is complete. */
  clientGone: AbortSignal;
}

export async function forward(ctx: Context, runtime: RedemptionRuntime, admission: Admission, claim: Claim): Promise<Outcome> {
  const ac = new AbortController();
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) ac.abort();
  });
  const f: Forwarding = { ctx, runtime, admission, claim, clientGone: ac.signal };
  if (await refusedByModeration(f)) return 'blocked';
  const up = await sendUpstream(f);
  if (!up) return 'client_gone';
  return admission.stream ? pipeStream(f, up) : answerJson(f, up);
}

/** True when moderation refused the request (the refusal is sent, cached and the tokens consumed). */
async function refusedByModeration(f: Forwarding): Promise<boolean> {
  const { runtime, admission: a } = f;
  let verdict: ModerationVerdict;
  try {
    verdict = await runtime.moderator.moderate(moderationInput(a.req), f.clientGone);
  } catch (e) {
    await f.claim.release('retryable');
    if (e instanceof ModerationUnavailable) runtime.logger.warn({ provider: runtime.moderator.name }, 'redemption: moderation unavailable');
    throw new RedemptionError('moderation_unavailable', 'moderation is unavailable; nothing was forwarded and the tokens stay valid for a retry of this same request', {
      headers: { 'retry-after': '2' },
      extra: { retryable: true },
    });
  }
  if (!verdict.flagged) return false;
  runtime.metrics.moderationBlocked.inc({ provider: runtime.moderator.name });
  const refusal = new RedemptionError('content_blocked', 'the request was refused by moderation and was not forwarded; the credit tokens are consumed', {
    extra: { categories: verdict.categories, moderation_provider: runtime.moderator.name, credits_spent: a.credits },
  });
  const body = Buffer.from(JSON.stringify(refusal.toBody()));
  await f.claim.finish({ kind: 'refusal', status: 400, body });
  if (a.pseudonym) await recordFlag(runtime, a.pseudonym);
  sendJson(f.ctx, 400, body, a.credits, false);
  return true;
}

async function recordFlag(runtime: RedemptionRuntime, p: NonNullable<Admission['pseudonym']>): Promise<void> {
  try {
    const n = await runtime.store.flag(p.permanent, 30 * 86_400_000);
    if (runtime.config.autoBlacklistAfterFlags > 0 && n >= runtime.config.autoBlacklistAfterFlags) {
      await runtime.store.blacklistAdd({ kind: 'transient', pseudonym: p.transient, expiresAt: p.transientRedemptionEnd });
    }
  } catch {
    runtime.logger.warn('redemption: could not record a moderation flag (store unavailable)');
  }
}

/** The provider's 2xx answer, or undefined when the client left while it was being asked (the claim is released). */
async function sendUpstream(f: Forwarding): Promise<UpstreamResponse | undefined> {
  const { model, req, stream } = f.admission;
  const upBody = upstreamBody(req, model.upstreamModel, model.transform, model.config.maxOutputTokens);
  let up: UpstreamResponse;
  try {
    up = await model.upstream.send(upBody, stream, upstreamSignal(stream, f.clientGone));
  } catch (e) {
    await f.claim.release('retryable');
    if (f.clientGone.aborted) return undefined;
    throw upstreamError(f, e);
  }
  if (up.status >= 200 && up.status < 300) return up;

  const text = await readAll(up, 64 * 1024).catch(() => Buffer.alloc(0));
  // The provider refused the request itself (bad parameter, context too long): no answer was produced,
  // so the tokens are freed for any request. Our own key failing or anything else: retryable.
  if (isRejection(up.status)) {
    await f.claim.release('free');
    throw new RedemptionError('upstream_rejected', `the model provider rejected the request: ${upstreamMessage(text)}; the tokens were not spent`, {
      status: up.status === 404 ? 400 : up.status,
      headers: NO_RETRY,
      extra: { tokens_spent: false },
    });
  }
  await f.claim.release('retryable');
  f.runtime.metrics.upstreamFailures.inc({ provider: model.providerName, kind: up.status >= 500 ? 'server_error' : `http_${up.status}` });
  f.runtime.logger.warn({ provider: model.providerName, status: up.status }, 'redemption: upstream failure');
  throw new RedemptionError('upstream_failed', `the model provider answered HTTP ${up.status}; the tokens stay valid for a retry of this same request`, { extra: { retryable: true } });
}

/** Provider statuses that refuse the request itself (404: a model the provider does not know, answered as 400). */
const REJECTIONS = [400, 404, 409, 413, 415, 422] as const;
function isRejection(status: number): status is (typeof REJECTIONS)[number] {
  return (REJECTIONS as readonly number[]).includes(status);
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

async function answerJson(f: Forwarding, up: UpstreamResponse): Promise<Outcome> {
  let answer: Buffer;
  try {
    answer = await readAll(up, MAX_UPSTREAM_JSON);
  } catch {
    await f.claim.release('retryable');
    if (f.clientGone.aborted) return 'client_gone';
    throw upstreamError(f, new UpstreamFailure('unreachable', 'provider connection broke while reading the answer'));
  }
  await f.claim.finish({ kind: 'json', status: 200, body: answer });
  sendJson(f.ctx, 200, answer, f.admission.credits, false);
  return 'answered';
}

function upstreamError(f: Forwarding, e: unknown): RedemptionError {
  const provider = f.admission.model.providerName;
  const failure = e instanceof UpstreamFailure ? e : new UpstreamFailure('unreachable', 'provider request failed');
  f.runtime.metrics.upstreamFailures.inc({ provider, kind: failure.kind });
  f.runtime.logger.warn({ provider, kind: failure.kind }, 'redemption: upstream failure');
  const extra = { retryable: true };
  const msg = `${failure.message}; the tokens stay valid for a retry of this same request`;
  if (failure.kind === 'timeout') return new RedemptionError('upstream_timeout', msg, { extra });
  if (failure.kind === 'rate_limited') return new RedemptionError('upstream_busy', msg, { headers: { 'retry-after': String(Math.max(1, failure.retryAfterSeconds ?? 5)) }, extra });
  return new RedemptionError('upstream_failed', msg, { extra });
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

/** The whole body, at most `max` bytes (beyond: the upstream is aborted and this throws); throws if the body breaks off. */
async function readAll(up: UpstreamResponse, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  // A body that ends without its end (destroyed, reset, idle timeout) makes the iterator throw.
  for await (const c of up.body as AsyncIterable<Buffer>) {
    total += c.length;
    if (total > max) {
      up.abort();
      throw new Error('upstream answer too large');
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Passes the provider's SSE bytes through as they arrive (backpressure: the
 * provider is not read while the client is slow), keeping a transcript for the
 * retry cache. Client gone → the provider request is aborted at once.
 */
async function pipeStream(f: Forwarding, up: UpstreamResponse): Promise<Outcome> {
  const res = f.ctx.res;
  const signal = f.clientGone;
  f.ctx.respond = false;
  res.writeHead(200, sseHeaders(f.admission.credits, false));
  res.flushHeaders();
  const transcript = new Transcript(f.runtime.config.retryCacheMaxBytes);
  let how: 'complete' | 'client_gone' | 'upstream_broke';
  const stopUpstream = () => up.abort();
  signal.addEventListener('abort', stopUpstream, { once: true });
  try {
    if (signal.aborted) throw new Error('client gone');
    for await (const c of up.body as AsyncIterable<Buffer>) {
      transcript.add(c);
      if (!res.write(c)) await once(res, 'drain', { signal });
    }
    how = signal.aborted ? 'client_gone' : 'complete';
  } catch {
    if (signal.aborted) up.abort();
    how = signal.aborted ? 'client_gone' : 'upstream_broke';
  } finally {
    signal.removeEventListener('abort', stopUpstream);
  }
  if (how === 'complete') {
    res.end();
    await f.claim.finish(transcript.answer());
    return 'answered';
  }
  if (how === 'client_gone') {
    // Bytes of the answer went out: the tokens are consumed, and a partial transcript is not worth replaying.
    await f.claim.finish(undefined);
    return 'client_gone';
  }
  const provider = f.admission.model.providerName;
  f.runtime.metrics.upstreamFailures.inc({ provider, kind: 'stream_broken' });
  f.runtime.logger.warn({ provider, kind: 'stream_broken' }, 'redemption: upstream failure');
  await f.claim.release('retryable');
  const err = new RedemptionError('upstream_failed', 'the model provider broke off the stream; the tokens stay valid for a retry of this same request', { extra: { retryable: true } });
  res.end(`data: ${JSON.stringify(err.toBody())}\n\n`);
  return 'upstream_failed';
}

/** The SSE bytes sent, kept for the retry cache while they fit in `max` (a longer stream is not kept). */
class Transcript {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private keep = true;
  constructor(private readonly max: number) {}

  add(c: Buffer): void {
    if (!this.keep) return;
    this.size += c.length;
    if (this.size > this.max) {
      this.keep = false;
      this.chunks.length = 0;
    } else this.chunks.push(c);
  }

  answer(): CachedAnswer | undefined {
    return this.keep ? { kind: 'sse', status: 200, body: Buffer.concat(this.chunks) } : undefined;
  }
}

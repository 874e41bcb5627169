/**
 * Stage 1 of a redemption: admit the request. Parse the credentials → read the body (limit
 * from the tokens presented) → validate and allowlist → price → verify the credentials. The
 * result carries everything later stages need from the tokens, computed here once: their spent
 * ids, expiries, the request binding and the keys of the retry cache.
 */
import type { Context } from 'koa';
import type { Keyring } from '@llmtor/protocol';
import { readBody } from './bodyReader.js';
import { canonicalJson, parseChatRequest, type ChatRequest } from './chatRequest.js';
import { ABUSE_HEADER, readCredentials, verifyCredentials, type Pseudonym } from './credentials.js';
import { NO_RETRY, RedemptionError } from './errors.js';
import { creditsNeeded, maxBodyFor } from './pricing.js';
import { modelConfigs, type RedemptionRuntime, type ResolvedModel } from './runtime.js';
import { TokenSecrets } from './tokenHashes.js';

/** The tokens of one request as the store and the retry cache know them (derivations only, never the tokens). */
export interface TokenSpend {
  spentIds: string[];
  /** When each token's key stops being redeemable (its spent-set entry may expire then). */
  expiresAt: number[];
  /** Keyed hash of the canonical request: the same tokens answer only this request. */
  binding: string;
  /** Keys derived from the tokens: seal and open the cached answer. */
  secrets: TokenSecrets;
}

/** An admitted request: valid, priced, paid for with verified tokens. */
export interface Admission {
  now: number;
  keyring: Keyring;
  req: ChatRequest;
  stream: boolean;
  model: ResolvedModel;
  /** Credit tokens the request spends (k). */
  credits: number;
  spend: TokenSpend;
  pseudonym?: Pseudonym;
}

export async function admit(ctx: Context, runtime: RedemptionRuntime): Promise<Admission> {
  const cfg = runtime.config;
  const now = runtime.deps.now();
  const keyring = runtime.deps.keyring();
  const presented = readCredentials(ctx.req.headersDistinct.authorization, ctx.get(ABUSE_HEADER) || undefined, cfg.maxTokensPerRequest, runtime.abuseCache);
  const at: Admitting = { runtime, keyring, now, presented: presented.tokens.length };
  const limit = maxBodyFor(modelConfigs(runtime), at.presented, cfg.maxRequestBytes);
  const raw = await readBody(ctx.req, limit, () => tooLarge(at, limit));
  const req = parseChatRequest(raw);
  const model = runtime.models.get(req.model);
  if (!model) throw new RedemptionError('model_not_found', `model ${JSON.stringify(req.model.slice(0, 80))} is not served here; GET /v1/models lists the models`, { headers: NO_RETRY });
  const credits = price(at, model, raw.length);
  const verified = verifyCredentials(presented, { keyring, now, challenge: runtime.challenge, abuseCache: runtime.abuseCache, abuseRequired: cfg.abuseTokens === 'required' });
  const secrets = new TokenSecrets(verified.tokens.map((v) => v.bytes));
  const spend: TokenSpend = {
    spentIds: verified.tokens.map((v) => v.spentId),
    expiresAt: verified.tokens.map((v) => v.redemptionEnd),
    binding: secrets.binding(canonicalJson(req)),
    secrets,
  };
  const admission: Admission = { now, keyring, req, stream: req.stream === true, model, credits, spend };
  if (verified.pseudonym) admission.pseudonym = verified.pseudonym;
  return admission;
}

/** The request while it is being admitted: what its error answers need. */
interface Admitting {
  runtime: RedemptionRuntime;
  keyring: Keyring;
  now: number;
  /** Credit tokens presented. */
  presented: number;
}

/** RFC 9110 §15.5.2: a 401 carries the challenge (with the newest credit key). */
function challengeHeader(at: Admitting): Record<string, string> {
  return { 'www-authenticate': at.runtime.challenge.wwwAuthenticate(at.keyring, at.now) };
}

/** k for this body on this model; exactly k tokens must be presented (fewer: 401 with the challenge; more: 400). */
function price(at: Admitting, model: ResolvedModel, bodyBytes: number): number {
  const k = creditsNeeded(model.config, bodyBytes);
  const n = at.presented;
  if (n < k) {
    throw new RedemptionError(
      'credits_required',
      `this request needs ${k} credit token(s) (${model.config.priceCredits} per ${model.config.bytesPerCredit} bytes of request, body is ${bodyBytes} bytes); ${n} presented. Send them as Authorization: PrivateToken token="<t1>", additional-tokens="<t2>,<t3>,…"`,
      { headers: { ...challengeHeader(at), ...NO_RETRY }, extra: { credits_needed: k, credits_presented: n } },
    );
  }
  if (n > k) {
    throw new RedemptionError('too_many_tokens', `this request needs exactly ${k} credit token(s); ${n} presented (extra tokens would be spent for nothing)`, {
      extra: { credits_needed: k, credits_presented: n },
    });
  }
  return k;
}

function tooLarge(at: Admitting, limit: number): RedemptionError {
  const n = at.presented;
  return new RedemptionError(
    'request_too_large',
    n === 0
      ? `request body is larger than one credit covers (${limit} bytes); send PrivateToken credentials for its size (see GET /v1/models: price_credits × ceil(bytes / bytes_per_credit))`
      : `request body is larger than the ${n} token(s) presented cover (at most ${limit} bytes)`,
    { headers: { connection: 'close', ...(n === 0 ? challengeHeader(at) : {}) } },
  );
}

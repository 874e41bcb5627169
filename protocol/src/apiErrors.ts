/**
 * Every code the LLM-Tor servers answer in `{ "error": { "code", "message", … } }`, with its
 * HTTP status and what a client may assume about the credit tokens it presented. The proxy
 * takes an error's status from here and cannot throw a code that is not listed; the extension
 * maps each code to words a person can act on, so a new code does not compile until both
 * sides handle it. (`ProtocolErrorCode` in errors.ts is the other kind: decoder and crypto
 * failures inside this package, never on the wire as such.)
 */

/**
 * What a client may assume about the credit tokens of a chat request answered with the code:
 * - `unspent`: certainly not spent; they are the client's again.
 * - `retry`: held for this request; send the same request (same tokens, same bytes) again.
 * - `spent`: not known to be unspent; the client lets them go.
 * - `none`: not an answer of the redemption side (no credit tokens are presented there).
 */
export type TokenFate = 'unspent' | 'retry' | 'spent' | 'none';

export interface ApiErrorInfo {
  /** The HTTP status answered with this code. */
  readonly status: number;
  /** Other statuses some answers with this code carry (the status says more, e.g. the provider's own). */
  readonly alsoStatus?: readonly number[];
  readonly tokens: TokenFate;
  /** What the code means, in one line (a client's fallback and the docs; the server's own message says more). */
  readonly message: string;
}

export const API_ERRORS = {
  // Any route.
  not_found: { status: 404, tokens: 'spent', message: 'no such route or resource' },
  method_not_allowed: { status: 405, tokens: 'spent', message: 'the method is not allowed on this route' },
  not_implemented: { status: 501, tokens: 'spent', message: 'the method is not supported by this server' },
  bad_request: { status: 400, tokens: 'spent', message: 'the request is malformed (a framework error: its own 4xx status)' },
  internal_error: { status: 500, tokens: 'spent', message: 'internal error' },
  store_unavailable: { status: 503, tokens: 'unspent', message: 'the store is unreachable; retry later' },
  rate_limited: { status: 429, tokens: 'unspent', message: 'too many requests; retry after the time given' },
  request_in_progress: { status: 409, tokens: 'retry', message: 'the same request is being answered right now; retry shortly' },
  client_closed_request: { status: 400, tokens: 'spent', message: 'the connection closed before the request body was complete' },
  unsupported_media_type: { status: 415, tokens: 'none', message: 'the request body has the wrong Content-Type' },
  body_too_large: { status: 413, tokens: 'none', message: 'the request body is too large' },
  malformed_json: { status: 400, tokens: 'none', message: 'the request body is not a JSON object' },
  invalid_request: { status: 400, alsoStatus: [422], tokens: 'unspent', message: 'the request does not match what the route accepts' },

  // Accounts, purchases, issuance, admin (identity known).
  invalid_account_key: { status: 401, tokens: 'none', message: 'the account key is not valid' },
  unknown_account: { status: 404, tokens: 'none', message: 'no account has this key' },
  invalid_admin_token: { status: 401, tokens: 'none', message: 'the admin token is not valid' },
  insufficient_credits: { status: 402, tokens: 'none', message: 'the account has too little credit for the tokens asked for' },
  purchase_required: { status: 402, tokens: 'none', message: 'abuse tokens are issued only to accounts with a paid purchase' },
  abuse_token_quota_exhausted: { status: 403, tokens: 'none', message: 'no more abuse tokens of this kind can be issued to the account now' },
  invalid_idempotency_key: { status: 422, tokens: 'none', message: 'the Idempotency-Key header is missing or malformed' },
  idempotency_key_reused: { status: 422, tokens: 'none', message: 'the Idempotency-Key was used for a different request' },
  request_expired: { status: 503, tokens: 'none', message: 'the issuance request took too long and was not carried out; retry it' },
  signing_failed: { status: 503, tokens: 'none', message: 'the signer failed; nothing was charged' },
  malformed_request: { status: 422, tokens: 'none', message: 'the token request is malformed' },
  mixed_keys: { status: 422, tokens: 'none', message: 'the token requests of one batch name different keys' },
  unknown_key: { status: 422, tokens: 'none', message: 'the token request names no key that issues now' },
  unknown_pack: { status: 422, tokens: 'none', message: 'no credit pack has this id' },
  payments_not_configured: { status: 503, tokens: 'none', message: 'payments are not configured on this server' },
  payment_provider_error: { status: 502, tokens: 'none', message: 'the payment provider failed' },
  payment_not_yet_credited: { status: 503, tokens: 'none', message: 'the payment is not credited yet; retry later' },
  missing_signature: { status: 400, tokens: 'none', message: 'the webhook has no signature' },
  invalid_signature: { status: 400, tokens: 'none', message: 'the webhook signature does not verify' },

  // Redemption (anonymous side).
  credits_required: { status: 401, tokens: 'unspent', message: 'the request needs more credit tokens than were presented' },
  too_many_tokens: { status: 400, tokens: 'unspent', message: 'more credit tokens were presented than the request needs' },
  request_too_large: { status: 413, tokens: 'unspent', message: 'the request body is larger than the tokens presented cover' },
  invalid_json: { status: 400, tokens: 'spent', message: 'the request body is not valid JSON' },
  model_not_found: { status: 404, tokens: 'unspent', message: 'the model is not served here' },
  invalid_token: { status: 401, tokens: 'spent', message: 'a token does not verify' },
  duplicate_token: { status: 400, tokens: 'spent', message: 'a credit token appears twice in the request' },
  abuse_tokens_required: { status: 401, tokens: 'unspent', message: 'the request needs the two abuse tokens' },
  invalid_abuse_tokens: { status: 400, tokens: 'unspent', message: 'the LLMTor-Abuse header is malformed' },
  pseudonym_blocked: { status: 403, tokens: 'unspent', message: 'the pseudonym is blocked' },
  token_spent: { status: 409, tokens: 'spent', message: 'a credit token was already redeemed' },
  content_blocked: { status: 400, tokens: 'spent', message: 'moderation refused the request; the tokens are consumed' },
  moderation_unavailable: { status: 503, tokens: 'retry', message: 'moderation is unavailable; retry the same request' },
  upstream_failed: { status: 502, tokens: 'retry', message: 'the model provider failed; retry the same request' },
  upstream_timeout: { status: 504, tokens: 'retry', message: 'the model provider did not answer in time; retry the same request' },
  upstream_busy: { status: 503, tokens: 'retry', message: 'the model provider is rate limiting; retry the same request later' },
  upstream_rejected: { status: 400, alsoStatus: [409, 413, 415, 422], tokens: 'unspent', message: 'the model provider rejected the request' },
  unauthorized: { status: 401, tokens: 'none', message: 'the admin API needs the admin token' },
} as const satisfies Record<string, ApiErrorInfo>;

export type ApiErrorCode = keyof typeof API_ERRORS;

/** The statuses an error with code `C` may carry besides its own (never, for most codes). */
export type ApiErrorAltStatus<C extends ApiErrorCode> = (typeof API_ERRORS)[C] extends { alsoStatus: readonly (infer S)[] } ? S : never;

export function isApiErrorCode(code: string): code is ApiErrorCode {
  return Object.prototype.hasOwnProperty.call(API_ERRORS, code);
}

/** What a client may assume about its credit tokens after a redemption answered with `code` (unknown codes: `spent`). */
export function tokenFate(code: string): TokenFate {
  return isApiErrorCode(code) ? API_ERRORS[code].tokens : 'spent';
}

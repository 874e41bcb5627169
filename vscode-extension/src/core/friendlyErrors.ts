/**
 * Errors in words a person can act on: what happened, whether anything was sent or charged,
 * and the next step (an action the UI offers as a button). Pure: no vscode import, so it is
 * unit-tested and shared by the chat view and notifications.
 */
import type { ApiErrorCode } from '@llmtor/protocol';
import { ServerError } from './apiErrors.js';
import { TorTransportError } from './torTransport.js';

export type ErrorCommand = 'llmtor.getTokens' | 'llmtor.restartTor' | 'llmtor.signIn' | 'llmtor.buyCredits' | 'llmtor.account' | 'llmtor.resetKeyPins' | 'llmtor.openSettings';

export interface FriendlyError {
  text: string;
  action?: { label: string; command: ErrorCommand };
}

const RESTART_TOR = { label: 'Restart Tor', command: 'llmtor.restartTor' } as const;
const SETTINGS = { label: 'Open settings', command: 'llmtor.openSettings' } as const;

/** SOCKS5 reply codes (RFC 1928 §6) as socks-proxy-agent words them, and what they mean over Tor. */
const SOCKS_REPLIES: [RegExp, string][] = [
  [/HostUnreachable|TTL ?expired|NetworkUnreachable/i, 'Tor could not reach the LLM-Tor server (an onion service that is down or still being published, or no exit that reaches it).'],
  [/ConnectionRefused/i, 'The LLM-Tor server refused the connection Tor made for you (it may be restarting).'],
  [/GeneralFailure|General SOCKS server failure/i, 'Tor could not build a path to the LLM-Tor server (Tor may still be starting, or the network blocks it).'],
  [/not ?allowed by ruleset|ConnectionNotAllowed/i, 'Tor refused the connection (an exit policy or a torrc rule).'],
];

export function friendlyError(e: unknown): FriendlyError {
  if (e instanceof TorTransportError) {
    switch (e.code) {
      case 'tor_unreachable':
        return { text: `Tor is not running or not reachable, so nothing was sent (${e.message}).`, action: RESTART_TOR };
      case 'timeout':
        return { text: 'Tor took too long to answer. Nothing was charged; send again (Tor picks another path each time).' };
      case 'aborted':
        return { text: 'Stopped.' };
      case 'bad_url':
      case 'bad_socks_endpoint':
        return { text: `The LLM-Tor address or Tor port in the settings is not valid (${e.message}).`, action: SETTINGS };
      case 'foreign_socket':
        return { text: `A connection that did not go through Tor was stopped before anything was sent (${e.message}).`, action: RESTART_TOR };
    }
  }
  if (e instanceof ServerError) return serverError(e);
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown } | null)?.code;
  for (const [re, text] of SOCKS_REPLIES) if (re.test(message)) return { text: `${text} Nothing was charged; try again in a minute.`, action: RESTART_TOR };
  if (code === 'ECONNREFUSED' || /ECONNREFUSED/.test(message)) return { text: 'The LLM-Tor server is not reachable at the configured address (connection refused). Check llmtor.issuerUrl, or try again later.', action: SETTINGS };
  if (code === 'ENOTFOUND' || /ENOTFOUND|EAI_AGAIN/.test(message)) return { text: 'The LLM-Tor server name does not resolve. Check llmtor.issuerUrl and your network.', action: SETTINGS };
  if (code === 'ETIMEDOUT' || code === 'ECONNRESET' || /ETIMEDOUT|ECONNRESET|socket hang up/.test(message)) return { text: 'The connection to the LLM-Tor server was lost. Nothing was charged twice: sending again replays the same request.' };
  if (/ENOENT.*tor|spawn tor/i.test(message)) return { text: 'The tor program was not found. Install Tor (e.g. apt install tor, or Tor Browser) or set llmtor.tor.path.', action: SETTINGS };
  return { text: message };
}

/** What the chat view says about a server error code; `by_status` leaves it to the HTTP status (as for codes it does not know). */
type Advice = 'buy_credits' | 'sign_in' | 'slow_down' | 'tokens_refused' | 'provider_failed' | 'store_failed' | 'payment_failed' | 'rejected' | 'server_error' | 'as_is' | 'by_status';

/**
 * Every code of the server's table, decided: a code added there does not compile until it is
 * placed here. `by_status` for codes this client is never sent (admin, webhook) or whose
 * status says more than the code (`upstream_rejected` passes on the provider's).
 */
const ADVICE: Readonly<Record<ApiErrorCode, Advice>> = {
  not_found: 'as_is',
  method_not_allowed: 'as_is',
  not_implemented: 'server_error',
  bad_request: 'by_status',
  internal_error: 'server_error',
  store_unavailable: 'store_failed',
  rate_limited: 'slow_down',
  request_in_progress: 'as_is',
  client_closed_request: 'rejected',
  unsupported_media_type: 'as_is',
  body_too_large: 'as_is',
  malformed_json: 'rejected',
  invalid_request: 'rejected',
  invalid_account_key: 'sign_in',
  unknown_account: 'sign_in',
  invalid_admin_token: 'by_status',
  insufficient_credits: 'buy_credits',
  purchase_required: 'buy_credits',
  abuse_token_quota_exhausted: 'tokens_refused',
  invalid_idempotency_key: 'rejected',
  idempotency_key_reused: 'rejected',
  request_expired: 'provider_failed',
  signing_failed: 'provider_failed',
  malformed_request: 'rejected',
  mixed_keys: 'rejected',
  unknown_key: 'rejected',
  unknown_pack: 'rejected',
  payments_not_configured: 'as_is',
  payment_provider_error: 'payment_failed',
  payment_not_yet_credited: 'payment_failed',
  missing_signature: 'by_status',
  invalid_signature: 'by_status',
  credits_required: 'tokens_refused',
  too_many_tokens: 'rejected',
  request_too_large: 'as_is',
  invalid_json: 'rejected',
  model_not_found: 'as_is',
  invalid_token: 'tokens_refused',
  duplicate_token: 'rejected',
  abuse_tokens_required: 'tokens_refused',
  invalid_abuse_tokens: 'rejected',
  pseudonym_blocked: 'tokens_refused',
  token_spent: 'as_is',
  content_blocked: 'rejected',
  moderation_unavailable: 'provider_failed',
  upstream_failed: 'provider_failed',
  upstream_timeout: 'provider_failed',
  upstream_busy: 'provider_failed',
  upstream_rejected: 'by_status',
  unauthorized: 'by_status',
};

function serverError(e: ServerError): FriendlyError {
  // This client's own codes: an answer cut off mid-stream, an error event inside a stream.
  if (e.code === 'stream_cut') return advise(e, 'stream_cut');
  if (e.code === 'stream_error') return advise(e, 'provider_failed');
  const advice = e.known ? ADVICE[e.known] : 'by_status';
  return advise(e, advice === 'by_status' ? byStatus(e) : advice);
}

/** For codes this client does not know (another server version, `http_NNN`): guess from the status. */
function byStatus(e: ServerError): Exclude<Advice, 'by_status'> {
  if (e.code === 'insufficient' || e.status === 402) return 'buy_credits';
  if (e.status === 401 && /account/i.test(e.message)) return 'sign_in';
  if (e.status === 429) return 'slow_down';
  if (e.status === 401 || e.status === 403) return 'tokens_refused';
  if (e.status === 502 || e.status === 503 || e.status === 504) return 'provider_failed';
  if (e.status === 422 || e.status === 400) return 'rejected';
  if (e.status >= 500) return 'server_error';
  return 'as_is';
}

function advise(e: ServerError, advice: Exclude<Advice, 'by_status'> | 'stream_cut'): FriendlyError {
  const detail = e.message.replace(/^[^:]{1,60}: /, '');
  switch (advice) {
    case 'buy_credits':
      return { text: 'Your account has no credit left for tokens.', action: { label: 'Buy credits', command: 'llmtor.buyCredits' } };
    case 'sign_in':
      return { text: 'The server does not know this account key. Sign in with the key you were shown.', action: { label: 'Sign in', command: 'llmtor.signIn' } };
    case 'slow_down':
      return { text: `The server asks to slow down (${detail}). Wait a minute, then send again.` };
    case 'stream_cut':
      return { text: 'The answer was cut off (the Tor connection dropped). Regenerate: the same request gets the same answer without a second charge.' };
    case 'tokens_refused':
      return { text: `The server refused the tokens (${detail}). Get new tokens and send again.`, action: { label: 'Get tokens', command: 'llmtor.getTokens' } };
    case 'provider_failed':
      return { text: `The model provider failed to answer (${detail}). Try again in a moment, or pick another model.` };
    case 'store_failed':
      // Not the model provider: LLM-Tor's own token store. Whether the tokens were taken is
      // what the server said (`tokens_spent`), never assumed.
      return e.details['tokens_spent'] === 'unknown'
        ? { text: `The LLM-Tor server's token store failed while recording this message's tokens (${detail}). They are held for this message only: send it again unchanged in a minute (Regenerate) and it is not charged twice.` }
        : { text: `The LLM-Tor server's token store is unavailable (${detail}). Nothing was charged; try again in a moment.` };
    case 'payment_failed':
      return e.code === 'payment_not_yet_credited'
        ? { text: `The payment is not confirmed yet (${detail}). If you completed it, its credit arrives once the payment provider confirms it: refresh the balance in a few minutes.` }
        : { text: `The payment provider failed (${detail}). Try again in a few minutes.` };
    case 'rejected':
      return { text: `The server rejected the request (${detail}).` };
    case 'server_error':
      return { text: `The LLM-Tor server had an error (HTTP ${e.status}: ${detail}). Try again later.` };
    case 'as_is':
      return { text: e.message };
  }
}

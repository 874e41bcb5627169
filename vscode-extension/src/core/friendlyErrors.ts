/**
 * Errors in words a person can act on: what happened, whether anything was sent or charged,
 * and the next step (an action the UI offers as a button). Pure: no vscode import, so it is
 * unit-tested and shared by the chat view and notifications.
 */
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

function serverError(e: ServerError): FriendlyError {
  const detail = e.message.replace(/^[^:]{1,60}: /, '');
  if (e.code === 'insufficient_credits' || e.code === 'insufficient' || e.status === 402) return { text: 'Your account has no credit left for tokens.', action: { label: 'Buy credits', command: 'llmtor.buyCredits' } };
  if (e.code === 'unknown_account' || e.code === 'invalid_account_key' || (e.status === 401 && /account/i.test(e.message))) return { text: 'The server does not know this account key. Sign in with the key you were shown.', action: { label: 'Sign in', command: 'llmtor.signIn' } };
  if (e.status === 429) return { text: `The server asks to slow down (${detail}). Wait a minute, then send again.` };
  if (e.code === 'stream_cut') return { text: 'The answer was cut off (the Tor connection dropped). Regenerate: the same request gets the same answer without a second charge.' };
  if (e.status === 401 || e.status === 403) return { text: `The server refused the tokens (${detail}). Get new tokens and send again.`, action: { label: 'Get tokens', command: 'llmtor.getTokens' } };
  if (e.status === 502 || e.status === 503 || e.status === 504 || e.code === 'stream_error') return { text: `The model provider failed to answer (${detail}). Try again in a moment, or pick another model.` };
  if (e.status === 422 || e.status === 400) return { text: `The server rejected the request (${detail}).` };
  if (e.status >= 500) return { text: `The LLM-Tor server had an error (HTTP ${e.status}: ${detail}). Try again later.` };
  return { text: e.message };
}

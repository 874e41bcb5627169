/**
 * The client's reading of server error codes comes from the shared table (API_ERRORS): which
 * answers leave the tokens unspent or worth a retry, and the words shown for each code. Checked
 * here against the hand-written lists and status rules the client used before the table, so the
 * table changed what is written where, not what the user sees.
 */
import assert from 'node:assert/strict';
import { API_ERRORS, type ApiErrorCode, type ApiErrorInfo } from '@llmtor/protocol';
import { NOT_SPENT, RETRY_SAME, ServerError, tokenFate } from '../src/core/apiErrors.js';
import { TorTransportError } from '../src/core/torTransport.js';
import { friendlyError } from '../src/core/friendlyErrors.js';

/** The lists the client kept by hand before the table (llmtorClient.ts). */
const OLD_NOT_SPENT = ['credits_required', 'too_many_tokens', 'model_not_found', 'request_too_large', 'invalid_request', 'rate_limited', 'pseudonym_blocked', 'store_unavailable', 'upstream_rejected', 'abuse_tokens_required', 'invalid_abuse_tokens'];
const OLD_RETRY_SAME = ['upstream_failed', 'upstream_timeout', 'upstream_busy', 'moderation_unavailable', 'request_in_progress', 'stream_cut'];

/** The status rules friendlyErrors.ts applied to every server error before the table. */
function oldFriendly(e: ServerError): { text: string; command?: string } {
  const detail = e.message.replace(/^[^:]{1,60}: /, '');
  if (e.code === 'insufficient_credits' || e.code === 'insufficient' || e.status === 402) return { text: 'Your account has no credit left for tokens.', command: 'llmtor.buyCredits' };
  if (e.code === 'unknown_account' || e.code === 'invalid_account_key' || (e.status === 401 && /account/i.test(e.message))) return { text: 'The server does not know this account key. Sign in with the key you were shown.', command: 'llmtor.signIn' };
  if (e.status === 429) return { text: `The server asks to slow down (${detail}). Wait a minute, then send again.` };
  if (e.code === 'stream_cut') return { text: 'The answer was cut off (the Tor connection dropped). Regenerate: the same request gets the same answer without a second charge.' };
  if (e.status === 401 || e.status === 403) return { text: `The server refused the tokens (${detail}). Get new tokens and send again.`, command: 'llmtor.getTokens' };
  if (e.status === 502 || e.status === 503 || e.status === 504 || e.code === 'stream_error') return { text: `The model provider failed to answer (${detail}). Try again in a moment, or pick another model.` };
  if (e.status === 422 || e.status === 400) return { text: `The server rejected the request (${detail}).` };
  if (e.status >= 500) return { text: `The LLM-Tor server had an error (HTTP ${e.status}: ${detail}). Try again later.` };
  return { text: e.message };
}

function old(e: ServerError): { text: string; command: string | undefined } {
  const o = oldFriendly(e);
  return { text: o.text, command: o.command };
}

/** Codes whose words changed on purpose: they read as a failure of "the model provider" before. */
const REWORDED: ApiErrorCode[] = ['store_unavailable', 'payments_not_configured', 'payment_provider_error', 'payment_not_yet_credited'];

describe('server error codes from the shared table', () => {
  it('the codes that leave tokens unspent or retryable are the ones the client listed by hand', () => {
    assert.deepEqual([...NOT_SPENT].sort(), [...OLD_NOT_SPENT].sort());
    assert.deepEqual([...RETRY_SAME].sort(), [...OLD_RETRY_SAME].sort());
  });

  it('every code of the table, at each of its statuses, reads as it did before the table (but the store and payment codes, below)', () => {
    let checked = 0;
    for (const code of Object.keys(API_ERRORS) as ApiErrorCode[]) {
      if (REWORDED.includes(code)) continue;
      const info: ApiErrorInfo = API_ERRORS[code];
      for (const status of [info.status, ...(info.alsoStatus ?? [])]) {
        const e = new ServerError(status, code, `chat: ${info.message}`);
        const f = friendlyError(e);
        assert.deepEqual({ text: f.text, command: f.action?.command }, old(e), `${code} ${status}`);
        checked++;
      }
    }
    assert.ok(checked > Object.keys(API_ERRORS).length);
  });

  it('codes the client does not know, and its own, still read by their status', () => {
    const cases = [new ServerError(402, 'insufficient', 'issuance: x'), new ServerError(401, 'whatever', 'account: the account is closed'), new ServerError(418, 'http_418', 'chat: HTTP 418'), new ServerError(500, 'http_500', 'chat: HTTP 500'), new ServerError(502, 'stream_error', 'chat: broke'), new ServerError(502, 'stream_cut', 'chat: cut'), new ServerError(403, 'new_code', 'chat: no')];
    for (const e of cases) {
      const f = friendlyError(e);
      assert.deepEqual({ text: f.text, command: f.action?.command }, old(e), e.code);
    }
  });

  it("a failed token store is LLM-Tor's, not the provider's, and 'nothing charged' only when the server said so", () => {
    const unspent = friendlyError(new ServerError(503, 'store_unavailable', 'chat: the spent-token store is unreachable; nothing was spent, retry later', { tokens_spent: false }));
    assert.match(unspent.text, /token store is unavailable .*Nothing was charged/);
    assert.doesNotMatch(unspent.text, /model provider/);
    const unknown = friendlyError(new ServerError(503, 'store_unavailable', 'chat: the spent-token store failed while the tokens were being claimed', { tokens_spent: 'unknown' }));
    assert.match(unknown.text, /held for this message only: send it again unchanged/);
    assert.doesNotMatch(unknown.text, /Nothing was charged/);
  });

  it('payment codes speak of the payment, not of the model provider', () => {
    assert.match(friendlyError(new ServerError(503, 'payment_not_yet_credited', 'purchase: the payment is not credited yet; retry later')).text, /^The payment is not confirmed yet/);
    assert.match(friendlyError(new ServerError(502, 'payment_provider_error', 'purchase: the payment provider failed')).text, /^The payment provider failed/);
    assert.equal(friendlyError(new ServerError(503, 'payments_not_configured', 'purchase: payments are not configured on this server')).text, 'purchase: payments are not configured on this server');
  });
});

describe('what a failed chat request means for its tokens (tokenFate)', () => {
  it('a claim the server could not confirm either way is retried as the same request, never handed to another', () => {
    const e = new ServerError(503, 'store_unavailable', 'chat: failed while claiming', { tokens_spent: 'unknown' });
    assert.equal(tokenFate(e, false), 'retry');
    assert.equal(tokenFate(new ServerError(503, 'store_unavailable', 'chat: unreachable', { tokens_spent: false }), false), 'unspent');
  });

  it('follows the table for other codes, and Tor failures by where they happened', () => {
    assert.equal(tokenFate(new ServerError(502, 'upstream_failed', 'chat: x'), false), 'retry');
    assert.equal(tokenFate(new ServerError(400, 'token_spent', 'chat: x'), false), 'spent');
    assert.equal(tokenFate(new TorTransportError('tor_unreachable', 'no tor'), false), 'unspent');
    assert.equal(tokenFate(new TorTransportError('aborted', 'stopped'), true), 'spent');
    assert.equal(tokenFate(new TorTransportError('aborted', 'stopped'), false), 'retry');
    assert.equal(tokenFate(new Error('socket hang up'), true), 'retry');
  });
});

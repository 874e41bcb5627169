/**
 * The redemption side reads its error statuses and metric outcomes from the shared code table
 * (API_ERRORS in @llmtor/protocol): checked against the switch it used before the table.
 */
import assert from 'node:assert/strict';
import { API_ERRORS, type ApiErrorCode } from '@llmtor/protocol';
import { RedemptionError } from '../../src/redemption/errors.js';
import { OUTCOME_OF } from '../../src/redemption/metrics.js';

/** outcomeOf() as it was (chatCompletions.ts before the table); `internal_error` was set apart from it. */
function oldOutcome(code: string): string {
  switch (code) {
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
    case 'internal_error':
      return 'internal_error';
    default:
      return 'bad_request';
  }
}

describe('redemption errors from the shared code table', () => {
  it('every code counts under the outcome it counted under before', () => {
    for (const code of Object.keys(API_ERRORS) as ApiErrorCode[]) assert.equal(OUTCOME_OF[code], oldOutcome(code), code);
  });

  it('an error takes its status from the table unless it names one the table allows', () => {
    assert.equal(new RedemptionError('token_spent', 'x').status, 409);
    assert.equal(new RedemptionError('credits_required', 'x').status, 401);
    assert.equal(new RedemptionError('upstream_rejected', 'x').status, 400);
    assert.equal(new RedemptionError('upstream_rejected', 'x', { status: 413 }).status, 413);
    assert.deepEqual(new RedemptionError('upstream_busy', 'busy', { headers: { 'retry-after': '5' }, extra: { retryable: true } }).toBody(), {
      error: { code: 'upstream_busy', message: 'busy', type: 'service_unavailable', retryable: true },
    });
  });
});

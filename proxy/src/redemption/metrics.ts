/**
 * Redemption metrics. Labels are closed sets chosen here (outcome, provider
 * name from configuration, failure kind, stream yes/no): nothing from a
 * request — no model string as sent, no pseudonym, no token — ever becomes a label.
 */
import type { ApiErrorCode } from '@llmtor/protocol';
import { Counter, Histogram, type Registry } from 'prom-client';

export const OUTCOMES = [
  'answered',
  'replayed',
  'blocked',
  'needs_tokens',
  'invalid_token',
  'bad_request',
  'conflict',
  'in_progress',
  'rate_limited',
  'blacklisted',
  'upstream_failed',
  'upstream_rejected',
  'store_unavailable',
  'moderation_unavailable',
  'client_gone',
  'internal_error',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** The outcome of a request answered with an error code (every code decided here: a new one does not compile until it is). */
export const OUTCOME_OF: Readonly<Record<ApiErrorCode, Outcome>> = {
  not_found: 'bad_request',
  method_not_allowed: 'bad_request',
  not_implemented: 'bad_request',
  bad_request: 'bad_request',
  internal_error: 'internal_error',
  store_unavailable: 'store_unavailable',
  rate_limited: 'rate_limited',
  request_in_progress: 'in_progress',
  client_closed_request: 'client_gone',
  unsupported_media_type: 'bad_request',
  body_too_large: 'bad_request',
  malformed_json: 'bad_request',
  invalid_request: 'bad_request',
  invalid_account_key: 'bad_request',
  unknown_account: 'bad_request',
  invalid_admin_token: 'bad_request',
  insufficient_credits: 'bad_request',
  purchase_required: 'bad_request',
  abuse_token_quota_exhausted: 'bad_request',
  invalid_idempotency_key: 'bad_request',
  idempotency_key_reused: 'bad_request',
  request_expired: 'bad_request',
  signing_failed: 'bad_request',
  malformed_request: 'bad_request',
  mixed_keys: 'bad_request',
  unknown_key: 'bad_request',
  unknown_pack: 'bad_request',
  payments_not_configured: 'bad_request',
  payment_provider_error: 'bad_request',
  payment_not_yet_credited: 'bad_request',
  missing_signature: 'bad_request',
  invalid_signature: 'bad_request',
  credits_required: 'needs_tokens',
  too_many_tokens: 'bad_request',
  request_too_large: 'bad_request',
  invalid_json: 'bad_request',
  model_not_found: 'bad_request',
  invalid_token: 'invalid_token',
  duplicate_token: 'bad_request',
  abuse_tokens_required: 'invalid_token',
  invalid_abuse_tokens: 'invalid_token',
  pseudonym_blocked: 'blacklisted',
  token_spent: 'conflict',
  content_blocked: 'bad_request',
  moderation_unavailable: 'moderation_unavailable',
  upstream_failed: 'upstream_failed',
  upstream_timeout: 'upstream_failed',
  upstream_busy: 'upstream_failed',
  upstream_rejected: 'upstream_rejected',
  unauthorized: 'bad_request',
};

function counter(reg: Registry, name: string, help: string, labelNames: string[]): Counter<string> {
  const existing = reg.getSingleMetric(name);
  if (existing) return existing as Counter<string>;
  return new Counter({ name, help, labelNames, registers: [reg] });
}

export class RedemptionMetrics {
  readonly requests: Counter<string>;
  readonly tokensSpent: Counter<string>;
  readonly upstreamFailures: Counter<string>;
  readonly moderationBlocked: Counter<string>;
  readonly duration: Histogram<string>;

  constructor(reg: Registry) {
    this.requests = counter(reg, 'llmtor_redemption_requests_total', 'Chat-completion requests on the anonymous side, by outcome', ['outcome']);
    this.tokensSpent = counter(reg, 'llmtor_redemption_tokens_spent_total', 'Credit tokens claimed in the spent set', []);
    this.upstreamFailures = counter(reg, 'llmtor_upstream_failures_total', 'Upstream failures that left the tokens retryable, by provider and kind', ['provider', 'kind']);
    this.moderationBlocked = counter(reg, 'llmtor_moderation_blocked_total', 'Requests refused by moderation, by moderation provider', ['provider']);
    const h = reg.getSingleMetric('llmtor_redemption_duration_seconds');
    this.duration =
      (h as Histogram<string> | undefined) ??
      new Histogram({
        name: 'llmtor_redemption_duration_seconds',
        help: 'Time from request to the end of the answer (streamed answers: to the last byte)',
        labelNames: ['stream'],
        buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120],
        registers: [reg],
      });
    for (const o of OUTCOMES) this.requests.inc({ outcome: o }, 0);
    // Label children resolved once: inc/observe on them skips prom-client's per-call label hashing.
    for (const o of OUTCOMES) this.byOutcome.set(o, this.requests.labels(o));
    this.durationStream = this.duration.labels('true');
    this.durationJson = this.duration.labels('false');
  }

  private readonly byOutcome = new Map<Outcome, { inc(v?: number): void }>();
  private readonly durationStream: { observe(v: number): void };
  private readonly durationJson: { observe(v: number): void };

  /** One finished chat-completion request (hot path). */
  request(outcome: Outcome, stream: boolean, seconds: number): void {
    this.byOutcome.get(outcome)!.inc();
    (stream ? this.durationStream : this.durationJson).observe(seconds);
  }
}

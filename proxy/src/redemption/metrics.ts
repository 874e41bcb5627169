/**
 * Redemption metrics. Labels are closed sets chosen here (outcome, provider
 * name from configuration, failure kind, stream yes/no): nothing from a
 * request — no model string as sent, no pseudonym, no token — ever becomes a label.
 */
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

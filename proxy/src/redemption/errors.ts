import type { ApiErrorCode } from '@llmtor/protocol';
import { ApiError, type ApiErrorOptions } from '../http/apiError.js';

/** Header for answers a client must not retry unchanged (the OpenAI SDKs honour it). */
export const NO_RETRY: Readonly<Record<string, string>> = { 'x-should-retry': 'false' };

/**
 * The one error type of the redemption path: an HTTP status, a stable code and
 * an actionable message. Messages never echo request content (a JSON parse
 * error from V8 quotes the input, so those are never passed through).
 */
export class RedemptionError<C extends ApiErrorCode = ApiErrorCode> extends ApiError<C> {
  constructor(code: C, message: string, opts: Omit<ApiErrorOptions<C>, 'details'> & { extra?: Record<string, unknown> } = {}) {
    super(code, message, { ...(opts.status !== undefined ? { status: opts.status } : {}), headers: opts.headers ?? {}, details: opts.extra ?? {} });
    this.name = 'RedemptionError';
  }

  /** Fields added to the JSON error beside code, message and type. */
  get extra(): Record<string, unknown> {
    return this.details;
  }

  toBody(): { error: Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, type: errorType(this.status), ...this.extra } };
  }
}

/** OpenAI SDKs read `error.type` and `error.message`; keep both present. */
function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 409 || status === 425) return 'conflict_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'service_unavailable';
  return 'invalid_request_error';
}

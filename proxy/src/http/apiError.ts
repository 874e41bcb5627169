/**
 * HTTP errors with an actionable JSON body: { "error": { "code", "message", ...details } }.
 * Thrown anywhere in a handler; the error middleware (errorMiddleware.ts) renders them. The
 * code is one of the shared table's (`API_ERRORS` in @llmtor/protocol), which also gives the
 * status; the few codes answered with more than one status name the other in `status`.
 */
import { API_ERRORS, type ApiErrorAltStatus, type ApiErrorCode, type ApiErrorInfo } from '@llmtor/protocol';

export interface ApiErrorOptions<C extends ApiErrorCode> {
  /** Only for a code the table lists with other statuses (`alsoStatus`). */
  status?: (typeof API_ERRORS)[C]['status'] | ApiErrorAltStatus<C>;
  details?: Record<string, unknown>;
  headers?: Record<string, string>;
}

export class ApiError<C extends ApiErrorCode = ApiErrorCode> extends Error {
  readonly status: number;
  readonly code: C;
  readonly details: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(code: C, message: string, opts: ApiErrorOptions<C> = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = (opts.status as number | undefined) ?? (API_ERRORS[code] as ApiErrorInfo).status;
    this.code = code;
    this.details = opts.details ?? {};
    this.headers = opts.headers ?? {};
  }
}

export function errorBody(code: ApiErrorCode, message: string, details: Record<string, unknown> = {}): { error: Record<string, unknown> } {
  return { error: { code, message, ...details } };
}

export function tooManyRequests(message: string, retryAfterMs: number): ApiError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ApiError('rate_limited', message, { headers: { 'Retry-After': String(seconds) }, details: { retry_after_seconds: seconds } });
}

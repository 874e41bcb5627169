/**
 * HTTP errors with an actionable JSON body: { "error": { "code", "message", ...details } }.
 * Thrown anywhere in a handler; the error middleware (errorMiddleware.ts) renders them.
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, opts: { details?: Record<string, unknown>; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = opts.details ?? {};
    this.headers = opts.headers ?? {};
  }
}

export function errorBody(code: string, message: string, details: Record<string, unknown> = {}): { error: Record<string, unknown> } {
  return { error: { code, message, ...details } };
}

export function tooManyRequests(message: string, retryAfterMs: number): ApiError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ApiError(429, 'rate_limited', message, { headers: { 'Retry-After': String(seconds) }, details: { retry_after_seconds: seconds } });
}

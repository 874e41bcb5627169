/**
 * The one error type of the redemption path: an HTTP status, a stable code and
 * an actionable message. Messages never echo request content (a JSON parse
 * error from V8 quotes the input, so those are never passed through).
 */
export class RedemptionError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  readonly extra: Record<string, unknown>;
  constructor(status: number, code: string, message: string, opts: { headers?: Record<string, string>; extra?: Record<string, unknown> } = {}) {
    super(message);
    this.name = 'RedemptionError';
    this.status = status;
    this.code = code;
    this.headers = opts.headers ?? {};
    this.extra = opts.extra ?? {};
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

/**
 * Errors from the LLM-Tor servers, carrying the `{ "error": { "code", "message" } }` body. The
 * codes and what they mean for the tokens come from the table the server uses (`API_ERRORS`).
 */
import { API_ERRORS, isApiErrorCode, type ApiErrorCode, type TokenFate } from '@llmtor/protocol';
import { readAll, TorTransportError } from './torTransport.js';
import type { HttpResponse } from './transport.js';

export class ServerError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly headers: Record<string, string | string[] | undefined> = {},
  ) {
    super(message);
    this.name = 'ServerError';
  }

  /** The code if it is one of the server's table (not an `http_NNN`, `bad_response` or client-side code). */
  get known(): ApiErrorCode | undefined {
    return isApiErrorCode(this.code) ? this.code : undefined;
  }
}

function codesWhere(fate: TokenFate): string[] {
  return (Object.keys(API_ERRORS) as ApiErrorCode[]).filter((c) => API_ERRORS[c].tokens === fate);
}

/** Server answers after which the presented tokens were certainly not spent. */
export const NOT_SPENT: ReadonlySet<string> = new Set(codesWhere('unspent'));
/** Answers after which the same request (same tokens, same bytes) should be sent again; `stream_cut` is this client's own (an answer cut off). */
export const RETRY_SAME: ReadonlySet<string> = new Set([...codesWhere('retry'), 'stream_cut']);

/**
 * What a failed chat request means for its tokens: 'unspent' (back to the wallet), 'retry'
 * (send the same request, same tokens, again) or 'spent' (gone).
 */
export function tokenFate(e: unknown, streamed: boolean): 'unspent' | 'retry' | 'spent' {
  if (e instanceof TorTransportError) {
    // Tor could not even reach the server: the tokens never left this machine.
    if (e.code === 'tor_unreachable' || e.code === 'foreign_socket' || e.code === 'bad_url' || e.code === 'bad_socks_endpoint') return 'unspent';
    if (e.code === 'aborted') return streamed ? 'spent' : 'retry';
    return 'retry';
  }
  if (e instanceof ServerError) {
    // The server's store failed while claiming: the claim may be recorded, holding the tokens
    // for this very request. Only the same request can get them back (its answer, or a 409
    // until the claim's lease ends); another request would find them taken.
    if (e.details['tokens_spent'] === 'unknown') return 'retry';
    if (NOT_SPENT.has(e.code)) return 'unspent';
    if (RETRY_SAME.has(e.code)) return 'retry';
    return 'spent';
  }
  // A connection cut mid-stream: the server keeps the answer for a retry of the same request.
  return 'retry';
}

/** Reads an error response into a ServerError (the body is bounded and never logged). */
export async function serverError(res: HttpResponse, what: string): Promise<ServerError> {
  let code = `http_${res.status}`;
  let message = `${what}: HTTP ${res.status}`;
  let details: Record<string, unknown> = {};
  try {
    const text = (await readAll(res.body, 64 * 1024)).toString('utf8');
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (parsed.error && typeof parsed.error === 'object') {
      if (typeof parsed.error.code === 'string') code = parsed.error.code;
      if (typeof parsed.error.message === 'string') message = `${what}: ${parsed.error.message}`;
      const { code: _c, message: _m, ...rest } = parsed.error as Record<string, unknown>;
      details = rest;
    }
  } catch {
    // Not JSON (a proxy's HTML error page, a cut connection): keep the status line.
  }
  return new ServerError(res.status, code, message, details, res.headers);
}

export async function readJson(res: HttpResponse, what: string, maxBytes = 4 * 1024 * 1024): Promise<unknown> {
  if (res.status < 200 || res.status >= 300) throw await serverError(res, what);
  const text = (await readAll(res.body, maxBytes)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new ServerError(res.status, 'bad_response', `${what}: the server's answer is not JSON`);
  }
}

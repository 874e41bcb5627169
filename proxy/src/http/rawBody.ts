/**
 * Reads a request body as bytes with a hard size limit (no body-parser: the
 * Stripe webhook needs the exact raw bytes, and issuance bodies are binary).
 */
import type { Context } from 'koa';
import { ApiError } from './apiError.js';

/** After a 413, how much more of the body is read and thrown away, and for how long, before the connection is cut. */
const DRAIN_BYTES = 8 * 1024 * 1024;
const DRAIN_MS = 5_000;

export function readRawBody(ctx: Context, limit: number): Promise<Buffer> {
  const tooLarge = () => new ApiError('body_too_large', `request body is larger than ${limit} bytes`);
  const declared = ctx.get('content-length');
  if (declared && /^\d+$/.test(declared) && Number(declared) > limit) return Promise.reject(tooLarge());
  const req = ctx.req;
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      // Over the limit (a chunked body has no Content-Length to refuse up front). Destroying the request
      // here would reset the connection before the 413 is written: keep reading and discarding instead
      // (bounded), answer, and close the connection after the answer.
      req.off('data', onData);
      req.off('end', onEnd);
      chunks.length = 0;
      ctx.set('Connection', 'close');
      let drained = 0;
      const cut = setTimeout(() => req.destroy(), DRAIN_MS);
      cut.unref();
      req.on('data', (c: Buffer) => {
        drained += c.length;
        if (drained > DRAIN_BYTES) req.destroy();
      });
      req.once('end', () => clearTimeout(cut));
      req.once('close', () => clearTimeout(cut));
      reject(tooLarge());
    };
    const onEnd = () => resolve(Buffer.concat(chunks, size));
    req.on('data', onData);
    req.once('end', onEnd);
    // The client closed the connection mid-body (Node reports it as an 'aborted' error): not a server error.
    req.once('error', () => reject(new ApiError('client_closed_request', 'the connection closed before the request body was complete')));
  });
}

/** Parses a JSON object body; anything else is a 4xx with a message that says what was expected. */
export async function readJsonObject(ctx: Context, limit = 16 * 1024): Promise<Record<string, unknown>> {
  const type = ctx.request.type;
  if (type !== 'application/json') throw new ApiError('unsupported_media_type', 'send Content-Type: application/json');
  const raw = await readRawBody(ctx, limit);
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError('malformed_json', 'request body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError('malformed_json', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

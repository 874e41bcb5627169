/**
 * Reads a request body as bytes with a hard size limit (no body-parser: the
 * Stripe webhook needs the exact raw bytes, and issuance bodies are binary).
 */
import type { Context } from 'koa';
import { ApiError } from './apiError.js';

export async function readRawBody(ctx: Context, limit: number): Promise<Buffer> {
  const declared = ctx.get('content-length');
  if (declared && /^\d+$/.test(declared) && Number(declared) > limit) {
    throw new ApiError(413, 'body_too_large', `request body is larger than ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      ctx.req.destroy();
      throw new ApiError(413, 'body_too_large', `request body is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** Parses a JSON object body; anything else is a 4xx with a message that says what was expected. */
export async function readJsonObject(ctx: Context, limit = 16 * 1024): Promise<Record<string, unknown>> {
  const type = ctx.request.type;
  if (type !== 'application/json') throw new ApiError(415, 'unsupported_media_type', 'send Content-Type: application/json');
  const raw = await readRawBody(ctx, limit);
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ApiError(400, 'malformed_json', 'request body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ApiError(400, 'malformed_json', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

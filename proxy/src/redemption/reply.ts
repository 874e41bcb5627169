/** Writing an answer to the client: JSON, an SSE stream's head, or a cached answer replayed. */
import type { Context } from 'koa';
import type { CachedAnswer } from './cachedAnswer.js';

export function sendJson(ctx: Context, status: number, body: Buffer, credits: number, replayed: boolean): void {
  ctx.status = status;
  ctx.set('cache-control', 'no-store');
  ctx.set('llmtor-credits-spent', String(credits));
  if (replayed) ctx.set('llmtor-replay', 'true');
  if (status >= 400) ctx.set('x-should-retry', 'false');
  ctx.type = 'application/json';
  ctx.body = body;
}

export function sseHeaders(credits: number, replayed: boolean): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
    'llmtor-credits-spent': String(credits),
  };
  if (replayed) h['llmtor-replay'] = 'true';
  return h;
}

/** The cached answer of an earlier identical request, as it was first sent. */
export function replay(ctx: Context, a: CachedAnswer, credits: number): void {
  if (a.kind === 'sse') {
    ctx.respond = false;
    ctx.res.writeHead(200, sseHeaders(credits, true));
    ctx.res.end(a.body);
    return;
  }
  sendJson(ctx, a.status, a.body, credits, true);
}

/**
 * The benchmark's reference: a bare Koa pass-through to the same upstream with
 * the same HTTP client (read body, parse JSON, forward, pipe the answer back).
 * No tokens, no Redis, no moderation. env: UPSTREAM_BASE_URL. Prints "LISTENING <port>".
 */
import Koa from 'koa';
import type { AddressInfo } from 'node:net';
import { HttpUpstream } from '../src/upstream/httpUpstream.js';
import { readBody } from '../src/redemption/bodyReader.js';
import { RedemptionError } from '../src/redemption/errors.js';

const upstream = new HttpUpstream({ name: 'bench', baseUrl: process.env.UPSTREAM_BASE_URL ?? '', apiKeys: [], authHeader: 'authorization', timeoutMs: 10_000, idleTimeoutMs: 10_000 });
const app = new Koa();
app.use(async (ctx) => {
  if (ctx.method !== 'POST' || ctx.path !== '/v1/chat/completions') return;
  const raw = await readBody(ctx.req, 1 << 20, () => new RedemptionError('request_too_large', 'too large'));
  const body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  const up = await upstream.send(body, body.stream === true, new AbortController().signal);
  ctx.status = up.status;
  ctx.type = up.contentType;
  ctx.body = up.body;
});
const server = app.listen({ port: 0, host: '127.0.0.1' }, () => process.stdout.write(`LISTENING ${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => {
  server.close();
  upstream.close();
  process.exit(0);
});

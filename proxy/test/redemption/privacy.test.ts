import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { fromBase64Url, toBase64Url, toHex } from '@llmtor/protocol';
import { LocalStandInUpstream, STAND_IN_TEXT } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

const ALLOWED_UPSTREAM_HEADERS = new Set(['host', 'connection', 'content-length', 'content-type', 'accept', 'authorization']);
const ALLOWED_BODY_FIELDS = new Set(['model', 'messages', 'temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'stop', 'stream', 'stream_options', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'logprobs', 'top_logprobs', 'seed', 'n', 'response_format', 'tools', 'tool_choice', 'parallel_tool_calls', 'reasoning_effort']);

/** Every key and value in Redis, values read raw (strings, zsets). */
async function dumpRedis(url: string): Promise<{ keys: string[]; blob: Buffer }> {
  const r = new Redis(url);
  const keys: string[] = [];
  const parts: Buffer[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await r.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const k of batch) {
      keys.push(k);
      parts.push(Buffer.from(k));
      const type = await r.type(k);
      if (type === 'string') parts.push((await r.getBuffer(k))!);
      else if (type === 'zset') parts.push(...(await r.zrangeBuffer(k, 0, -1)));
      else parts.push((await r.dumpBuffer(k))!);
    }
  } while (cursor !== '0');
  r.disconnect();
  return { keys, blob: Buffer.concat(parts) };
}

describe('privacy: nothing identifying is logged, stored, measured or forwarded on the redemption path', function () {
  this.timeout(30_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;

  before(async () => {
    redis = await startRedis({ forceSpawn: true });
    mint = await Mint.create();
    up = new LocalStandInUpstream();
    await up.listen();
    app = await startTestApp({
      mint,
      redisUrl: redis.url,
      config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl, apiKeys: ['sk-proxy-own-key'] } } },
    });
  });
  after(async () => {
    await app.close();
    await up.close();
    await redis.stop();
  });

  it('captured logs, metrics, every Redis key and value and the upstream recording hold none of it', async () => {
    const abuse = await mint.abuseHeader();
    const clientHeaders = {
      'x-forwarded-for': '203.0.113.77',
      'x-real-ip': '198.51.100.23',
      forwarded: 'for=192.0.2.60;proto=https',
      'user-agent': 'UA-MARKER-9f1c',
      cookie: 'session=COOKIE-MARKER-77aa',
      'x-client-marker': 'HEADER-MARKER-31d4',
      'x-llmtor-account': 'ACCOUNT-MARKER-5e5e',
      'openai-organization': 'ORG-MARKER-0b0b',
      'llmtor-abuse': abuse,
    };
    const prompt = 'PROMPT-MARKER-c0ffee what is the capital of France?';
    const used: Uint8Array[] = [];
    const send = async (extra: Record<string, unknown>, text = prompt, tokens?: Uint8Array[]) => {
      const t = tokens ?? (await mint.tokens('credit', 1));
      used.push(...t);
      return chat(app.url, { model: 'm', messages: [{ role: 'system', content: 'SYSTEM-MARKER-1' }, { role: 'user', content: text, name: 'NAME-MARKER-abcd' }], user: 'USER-FIELD-MARKER-4242', metadata: { tag: 'META-MARKER' }, store: true, safety_identifier: 'SAFETY-MARKER', ...extra }, { ...clientHeaders, authorization: authorization(t) });
    };

    // A plain answer, its replay, a streamed answer, a blocked request, an upstream failure and a replay attempt.
    const t1 = await mint.tokens('credit', 1);
    assert.equal((await send({}, prompt, t1)).status, 200);
    assert.equal((await send({}, prompt, t1)).status, 200);
    assert.equal((await send({ stream: true })).status, 200);
    assert.equal((await send({}, `${prompt} LLMTOR-MODERATION-TEST-BLOCK`)).status, 400);
    up.failNext({ kind: 'status', status: 500 });
    assert.equal((await send({}, `${prompt} fail`)).status, 502);
    assert.equal((await send({}, `${prompt} other`, t1)).status, 409);

    const markers = [
      '203.0.113.77', '198.51.100.23', '192.0.2.60', '127.0.0.1', 'UA-MARKER', 'COOKIE-MARKER', 'HEADER-MARKER', 'ACCOUNT-MARKER', 'ORG-MARKER',
      'PROMPT-MARKER', 'SYSTEM-MARKER', 'NAME-MARKER', 'USER-FIELD-MARKER', 'META-MARKER', 'SAFETY-MARKER', 'capital of France', STAND_IN_TEXT.slice(0, 30),
    ];
    const abuseTokens = abuse.split(', ').map((p) => fromBase64Url(p.split('=')[1]!));
    const tokenForms = [...used, ...abuseTokens].flatMap((t) => [toBase64Url(t), toHex(t), Buffer.from(t).toString('base64')]);

    // 1. Logs (every level, captured from the pino destination).
    const logText = app.logs.join('');
    assert.ok(app.logs.length > 0, 'the logger was captured');
    for (const m of [...markers, ...tokenForms]) assert.ok(!logText.includes(m), `log contains ${m.slice(0, 24)}`);

    // 2. Metrics text.
    const metricsText = await app.metrics.metrics();
    assert.match(metricsText, /llmtor_redemption_requests_total\{outcome="answered"\} 2/);
    for (const m of [...markers, ...tokenForms, 'sk-proxy-own-key']) assert.ok(!metricsText.includes(m), `metrics contain ${m.slice(0, 24)}`);

    // 3. Every Redis key and value.
    const { keys, blob } = await dumpRedis(redis.url);
    assert.ok(keys.some((k) => k.includes(':s:')) && keys.some((k) => k.includes(':c:')), 'spent entries and cached answers exist');
    for (const m of [...markers, ...tokenForms]) assert.ok(!blob.includes(Buffer.from(m)), `Redis holds ${m.slice(0, 24)}`);
    for (const t of [...used, ...abuseTokens]) assert.ok(!blob.includes(Buffer.from(t)), 'Redis holds raw token bytes');
    for (const k of keys) assert.match(k, /^llmtor:rdm:(s:\{[0-9a-f]{4}\}:\d+|c:\{[0-9a-f]{64}\}|rl:\{[0-9a-f]{64}\}:\d+|bl:[pt]:\{[0-9a-f]{64}\}|flags)$/, `unexpected key shape ${k}`);

    // 4. What the upstream received: allowlisted fields and headers only, with the proxy's own key.
    assert.ok(up.received.length >= 3);
    for (const r of up.received) {
      for (const h of Object.keys(r.headers)) assert.ok(ALLOWED_UPSTREAM_HEADERS.has(h), `upstream got header ${h}`);
      assert.equal(r.headers.authorization, 'Bearer sk-proxy-own-key');
      const b = r.body as Record<string, unknown> & { messages: Record<string, unknown>[] };
      for (const f of Object.keys(b)) assert.ok(ALLOWED_BODY_FIELDS.has(f), `upstream got field ${f}`);
      for (const msg of b.messages) assert.deepEqual(Object.keys(msg).sort(), ['content', 'role']);
      for (const m of ['USER-FIELD-MARKER', 'META-MARKER', 'SAFETY-MARKER', 'NAME-MARKER', ...tokenForms, ...markers.slice(0, 9)]) assert.ok(!r.rawBody.includes(m), `upstream body holds ${m.slice(0, 24)}`);
    }
  });
});

describe('the redemption role runs without any account data reachable', function () {
  this.timeout(30_000);
  let redis: RedisHandle;

  before(async () => {
    redis = await startRedis({ forceSpawn: true });
  });
  after(async () => redis.stop());

  it('works through a Redis user that can only touch redemption keys, while account keys stay unreadable', async () => {
    const admin = new Redis(redis.url);
    await admin.set('llmtor:account:ACCOUNT-KEY-HASH', JSON.stringify({ credits: 100 }));
    await admin.call('ACL', 'SETUSER', 'redemption', 'on', '>redemption-pw', 'resetkeys', '~llmtor:rdm:*', '~llmtor:{rdm}:*', '+@all', '-@dangerous', '+info');
    admin.disconnect();
    const restricted = `redis://redemption:redemption-pw@127.0.0.1:${redis.port}`;

    const probe = new Redis(restricted);
    await assert.rejects(probe.get('llmtor:account:ACCOUNT-KEY-HASH'), /NOPERM/);
    probe.disconnect();

    const mint = await Mint.create();
    const up = new LocalStandInUpstream();
    await up.listen();
    const app = await startTestApp({ mint, redisUrl: restricted, config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } }, adminToken: 'admin-token-0123456789' } });
    try {
      const h = { authorization: authorization(await mint.tokens('credit', 1)), 'llmtor-abuse': await mint.abuseHeader() };
      const body = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };
      assert.equal((await chat(app.url, body, h)).status, 200);
      assert.equal((await chat(app.url, body, h)).headers.get('llmtor-replay'), 'true');
      const list = await fetch(`${app.url}/admin/pseudonyms/blacklist`, { headers: { authorization: 'Bearer admin-token-0123456789' } });
      assert.equal(list.status, 200);
    } finally {
      await app.close();
      await up.close();
    }
  });

  it('no module of the redemption role imports account, ledger, billing or issuance code', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const src = join(here, '../../src');
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) visit(join(dirname(file), m[1]!));
    };
    visit(join(src, 'redemption/module.js'));
    const rel = [...seen].map((f) => f.slice(src.length + 1));
    assert.ok(rel.length > 10, rel.join());
    // http/apiError.js and http/adminToken.js are the shared error type and admin check (no account code).
    for (const f of rel) assert.match(f, /^(redemption|upstream|moderation)\/|^appTypes\.js$|^http\/(apiError|adminToken)\.js$/, `redemption role reaches ${f}`);
    assert.ok(readdirSync(join(src, 'redemption')).length > 0);
  });
});

import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { LocalStandInUpstream, STAND_IN_TEXT } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { startTestApp, type TestApp } from './support/testApp.js';

describe('any OpenAI SDK pointed at the proxy works (the real openai package)', function () {
  this.timeout(30_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let client: OpenAI;

  before(async () => {
    redis = await startRedis();
    mint = await Mint.create();
    up = new LocalStandInUpstream({ chunks: 6 });
    await up.listen();
    app = await startTestApp({ mint, redisUrl: redis.url, config: { models: [{ id: 'gpt-test', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl, apiKeys: ['sk-proxy'] } } } });
    client = new OpenAI({ apiKey: 'not-used-by-llmtor', baseURL: app.baseUrl, defaultHeaders: { 'LLMTor-Abuse': await mint.abuseHeader() } });
  });
  after(async () => {
    await app.close();
    await up.close();
    await redis.stop();
  });

  it('chat.completions.create without streaming', async () => {
    const r = await client.chat.completions.create(
      { model: 'gpt-test', messages: [{ role: 'user', content: 'Say hello' }], temperature: 0.2, user: 'alice@example.com' },
      { headers: { Authorization: authorization(await mint.tokens('credit', 1)) } },
    );
    assert.equal(r.choices[0]!.message.content, STAND_IN_TEXT);
    assert.equal(r.object, 'chat.completion');
  });

  it('chat.completions.create with stream: true yields the chunks as the upstream sends them', async () => {
    const stream = await client.chat.completions.create(
      { model: 'gpt-test', messages: [{ role: 'user', content: 'Stream please' }], stream: true },
      { headers: { Authorization: authorization(await mint.tokens('credit', 1)) } },
    );
    let text = '';
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      text += c.choices[0]?.delta.content ?? '';
    }
    assert.equal(text, STAND_IN_TEXT);
    assert.ok(chunks >= 6);
  });

  it('the SDK retry after an upstream 5xx reuses the same tokens and succeeds', async () => {
    up.failNext({ kind: 'status', status: 500 });
    const before = up.requests;
    const r = await client.chat.completions.create(
      { model: 'gpt-test', messages: [{ role: 'user', content: 'Retry me' }] },
      { headers: { Authorization: authorization(await mint.tokens('credit', 1)) }, maxRetries: 2 },
    );
    assert.equal(r.choices[0]!.message.content, STAND_IN_TEXT);
    assert.equal(up.requests - before, 2);
  });

  it('surfaces a structured error the SDK can read when tokens are missing', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-test', messages: [{ role: 'user', content: 'no tokens' }] }, { maxRetries: 0 }),
      (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401 && /needs 1 credit token/.test(e.message),
    );
  });
});

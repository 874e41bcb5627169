/// <reference types="mocha" />
/**
 * D6 of issue 13: a client that aborts a non-streamed request before the provider answers. Before,
 * the abort cancelled the upstream call and left the tokens retryable, so every retry-and-abort
 * was another upstream call for the same credit token (9 calls for 1 token in the campaign). Now
 * the answer produced after the client left is read to the end and cached (encrypted under the
 * token's key): retries are served from the cache, one upstream call in all.
 * Real proxy, real redis-server, a local stand-in upstream counting the calls it receives.
 */
import assert from 'node:assert/strict';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

describe('redemption: a non-streamed request aborted before the provider answers (D6)', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let abuse: string;

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream({ record: false, answerDelayMs: 800 });
    await up.listen();
    redis = await startRedis({ forceSpawn: true });
    app = await startTestApp({ mint, redisUrl: redis.url, config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } } } });
  });
  after(async () => {
    await app?.close();
    await redis?.stop();
    await up?.close();
  });

  it('9 aborted attempts and a retry cost one upstream call; the retry gets the answer from the cache', async () => {
    const [t] = mint.bulkTokens('credit', 1);
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'an answer nobody waits for' }] });
    const headers = { 'content-type': 'application/json', authorization: authorization([t!]), 'llmtor-abuse': abuse };
    for (let i = 0; i < 9; i++) {
      // Abort after the request is in (claimed, forwarded) and before the provider answers.
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 150);
      await fetch(`${app.url}/v1/chat/completions`, { method: 'POST', headers, body, signal: ac.signal }).then(
        (r) => r.arrayBuffer(),
        () => undefined,
      );
      clearTimeout(timer);
    }
    let last = '';
    const end = Date.now() + 15_000;
    for (;;) {
      const r = await chat(app.url, body, headers);
      last = `${r.status} ${r.text.slice(0, 160)}`;
      if (r.status === 200) {
        assert.equal(up.requests, 1, `upstream calls for one credit token: ${up.requests}`);
        assert.equal(r.headers.get('llmtor-replay'), 'true', 'served from the retry cache');
        break;
      }
      assert.equal(r.status, 409, last);
      assert.ok(Date.now() < end, `no answer; last: ${last}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(up.requests, 1, `upstream calls for one credit token: ${up.requests}`);
  });
});

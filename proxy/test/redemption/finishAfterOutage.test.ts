/// <reference types="mocha" />
/**
 * D10 of issue 13: Redis dies between the claim and the finish of a request. The answer is
 * delivered; before, the finish was lost, so a retry of the same request got 409
 * request_in_progress for the whole lease and then a second upstream call. The pod now keeps
 * trying the finish (bounded) until Redis is back, so the retry is served from the cache.
 * Real redis-server with AOF, SIGKILLed while the answer streams, restarted after it.
 */
import assert from 'node:assert/strict';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

describe('redemption: Redis lost between the claim and the finish', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let abuse: string;

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream({ record: false, chunks: 8, chunkDelayMs: 150 });
    await up.listen();
    redis = await startRedis({ forceSpawn: true, appendOnly: true });
    app = await startTestApp({ mint, redisUrl: redis.url, config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } }, redisTimeoutMs: 500 } });
  });
  after(async () => {
    await app?.close();
    await redis?.stop();
    await up?.close();
  });

  it('a retry of the same request after the outage gets the cached answer, not 409 and not a second upstream call', async () => {
    const [t] = mint.bulkTokens('credit', 1);
    const body = { model: 'm', stream: true, messages: [{ role: 'user', content: 'finish after an outage' }] };
    const headers = { authorization: authorization([t!]), 'llmtor-abuse': abuse };
    const first = chat(app.url, body, headers);
    // The claim is in (AOF, fsync always) once the stream has started; kill Redis while it streams.
    await new Promise((r) => setTimeout(r, 400));
    await redis.kill('SIGKILL');
    const answer = await first;
    assert.equal(answer.status, 200);
    assert.match(answer.text, /data: \[DONE\]/);
    await redis.restart();
    const upstreamCalls = up.requests;

    let last = '';
    const end = Date.now() + 15_000;
    for (;;) {
      const r = await chat(app.url, body, headers);
      last = `${r.status} ${r.text.slice(0, 120)}`;
      if (r.status === 200) {
        assert.equal(r.headers.get('llmtor-replay'), 'true');
        assert.equal(r.text, answer.text);
        break;
      }
      assert.ok(Date.now() < end, `no cached answer after the outage; last: ${last}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    assert.equal(up.requests, upstreamCalls, 'no second upstream call');
  });
});

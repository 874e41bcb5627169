/// <reference types="mocha" />
/**
 * D1 of issue 13: a Redis that stalls longer than redisTimeoutMs. The pod answers
 * 503 store_unavailable "nothing was spent"; the claim scripts it already sent run
 * when Redis resumes. They must do nothing then, or the 503 was a lie (the same
 * request would get 409 request_in_progress for the lease, any other 409 token_spent).
 * Stalled for real: SIGSTOP / SIGCONT of a redis-server process.
 */
import assert from 'node:assert/strict';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

const TIMEOUT_MS = 300;

describe('redemption: a stalled Redis (SIGSTOP longer than redisTimeoutMs)', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let abuse: string;

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream({ record: false });
    await up.listen();
    redis = await startRedis({ forceSpawn: true });
    app = await startTestApp({
      mint,
      redisUrl: redis.url,
      config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } }, redisTimeoutMs: TIMEOUT_MS, rateLimit: { requests: 1_000, windowSeconds: 60 } },
    });
  });
  after(async () => {
    await app?.close();
    await redis?.stop();
    await up?.close();
  });

  const body = (s: string) => ({ model: 'm', messages: [{ role: 'user', content: s }] });

  it('the 503 "nothing was spent" is true: claims sent during the stall do not take effect when Redis resumes', async () => {
    const [warm, ...tokens] = mint.bulkTokens('credit', 9);
    assert.equal((await chat(app.url, body('warm-up'), { authorization: authorization([warm!]), 'llmtor-abuse': abuse })).status, 200);
    const upBefore = up.requests;

    redis.signal('SIGSTOP');
    let stalled;
    const t0 = Date.now();
    try {
      stalled = await Promise.all(tokens.map((t, i) => chat(app.url, body(`prompt ${i}`), { authorization: authorization([t]), 'llmtor-abuse': abuse })));
    } finally {
      // Resume after the answers, so every claim reaches Redis only after the client was told.
      await new Promise((r) => setTimeout(r, 200));
      redis.signal('SIGCONT');
    }
    const waited = Date.now() - t0;
    for (const r of stalled) {
      assert.equal(r.status, 503, r.text);
      const e = (r.json() as { error: { code: string; message: string; tokens_spent: unknown } }).error;
      assert.equal(e.code, 'store_unavailable');
      assert.match(e.message, /nothing was spent/);
      assert.equal(e.tokens_spent, false);
    }
    assert.ok(waited < 5_000, `answered in ${waited} ms`);
    // Let the queued scripts run (Redis answers them as soon as it resumes).
    assert.equal(await app.redis!.ping(), 'PONG');

    // Half: the very same request again. Half: a different request with the same token. Both must be served.
    const again = await Promise.all(
      tokens.map((t, i) => chat(app.url, body(i % 2 === 0 ? `prompt ${i}` : `another prompt ${i}`), { authorization: authorization([t]), 'llmtor-abuse': abuse })),
    );
    const statuses = again.map((r) => (r.status === 200 ? 200 : `${r.status} ${(r.json() as { error: { code: string } }).error.code}`));
    assert.deepEqual(statuses, tokens.map(() => 200));
    assert.equal(up.requests - upBefore, tokens.length, 'one upstream call per token, none during the stall');
  });
});

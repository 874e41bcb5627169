import assert from 'node:assert/strict';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { toBase64Url } from '@llmtor/protocol';
import { LocalStandInUpstream, STAND_IN_TEXT } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

const body = (text = 'Hello there', extra: Record<string, unknown> = {}) => ({ model: 'm1', messages: [{ role: 'user', content: text }], ...extra });

for (const storeKind of ['redis', 'memory'] as const) {
  describe(`redemption with the ${storeKind} store`, function () {
    this.timeout(30_000);
    let redis: RedisHandle | undefined;
    let mint: Mint;
    let up: LocalStandInUpstream;
    let app: TestApp;
    let abuse: string;

    before(async () => {
      if (storeKind === 'redis') redis = await startRedis();
      mint = await Mint.create();
      abuse = await mint.abuseHeader();
    });
    after(async () => {
      await redis?.stop();
    });
    beforeEach(async () => {
      up = new LocalStandInUpstream();
      const { baseUrl } = await up.listen();
      app = await startTestApp({
        mint,
        ...(redis ? { redisUrl: redis.url } : {}),
        config: {
          models: [
            { id: 'm1', provider: 'p', priceCredits: 1, bytesPerCredit: 2048 },
            { id: 'm2', provider: 'p', priceCredits: 2, bytesPerCredit: 2048, upstreamModel: 'upstream-m2' },
          ],
          providers: { p: { baseUrl, apiKeys: ['sk-proxy-key-1'], timeoutMs: 1500 } },
          rateLimit: { requests: 1000, windowSeconds: 60 },
        },
      });
    });
    afterEach(async () => {
      await app.close();
      await up.close();
    });

    const headers = (tokens: Uint8Array[]) => ({ authorization: authorization(tokens), 'llmtor-abuse': abuse });

    it('lists models with their price in credits and size allowance', async () => {
      const res = await fetch(`${app.url}/v1/models`);
      const j = (await res.json()) as { object: string; data: { id: string; llmtor: { price_credits: number; bytes_per_credit: number } }[] };
      assert.equal(j.object, 'list');
      assert.deepEqual(
        j.data.map((m) => [m.id, m.llmtor.price_credits, m.llmtor.bytes_per_credit]),
        [
          ['m1', 1, 2048],
          ['m2', 2, 2048],
        ],
      );
    });

    it('answers a request paid with one token and forwards the upstream answer', async () => {
      const r = await chat(app.url, body(), headers(await mint.tokens('credit', 1)));
      assert.equal(r.status, 200, r.text);
      assert.equal((r.json() as { choices: { message: { content: string } }[] }).choices[0]!.message.content, STAND_IN_TEXT);
      assert.equal(r.headers.get('llmtor-credits-spent'), '1');
      assert.equal(up.requests, 1);
    });

    it('returns the cached answer for the same token and request without a second upstream call', async () => {
      const t = await mint.tokens('credit', 1);
      const a = await chat(app.url, body(), headers(t));
      const b = await chat(app.url, body(), headers(t));
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      assert.equal(b.text, a.text);
      assert.equal(b.headers.get('llmtor-replay'), 'true');
      assert.equal(up.requests, 1);
    });

    it('rejects a spent token presented with a different request', async () => {
      const t = await mint.tokens('credit', 1);
      assert.equal((await chat(app.url, body('first'), headers(t))).status, 200);
      const r = await chat(app.url, body('second'), headers(t));
      assert.equal(r.status, 409);
      assert.equal((r.json() as { error: { code: string } }).error.code, 'token_spent');
      assert.equal(up.requests, 1);
    });

    it('asks for tokens with 401, a PrivateToken challenge and the number needed', async () => {
      const r = await chat(app.url, body(), { 'llmtor-abuse': abuse });
      assert.equal(r.status, 401);
      assert.match(r.headers.get('www-authenticate') ?? '', /^PrivateToken challenge="[A-Za-z0-9_-]+=*", token-key="[A-Za-z0-9_-]+=*"/);
      const e = (r.json() as { error: { code: string; credits_needed: number } }).error;
      assert.equal(e.code, 'credits_required');
      assert.equal(e.credits_needed, 1);
    });

    it('prices by model and size: k = price × ceil(bytes / allowance), all k spent together', async () => {
      const big = body('x'.repeat(3000), { model: 'm2' }); // ~3 KB → 2 allowances × price 2 = 4
      // One token cannot pay for 3 KB on any model: the body is not even read.
      const one = await chat(app.url, big, headers(await mint.tokens('credit', 1)));
      assert.equal(one.status, 413);
      const two = await chat(app.url, big, headers(await mint.tokens('credit', 2)));
      assert.equal(two.status, 401);
      assert.equal((two.json() as { error: { credits_needed: number } }).error.credits_needed, 4);
      const four = await mint.tokens('credit', 4);
      const ok = await chat(app.url, big, headers(four));
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.headers.get('llmtor-credits-spent'), '4');
      assert.equal((up.received.at(-1)!.body as { model: string }).model, 'upstream-m2');
      // Every one of the four is now spent: reusing any of them with fresh partners for another request fails, and the fresh ones stay unspent.
      const fresh = await mint.tokens('credit', 1);
      const reuse = await chat(app.url, body('other'), headers([four[2]!].concat([])));
      assert.equal(reuse.status, 409);
      assert.equal((await chat(app.url, body('other'), headers(fresh))).status, 200);
    });

    it('rejects more tokens than the request needs, spending none', async () => {
      const t = await mint.tokens('credit', 2);
      const r = await chat(app.url, body(), headers(t));
      assert.equal(r.status, 400);
      assert.equal((r.json() as { error: { code: string } }).error.code, 'too_many_tokens');
      assert.equal((await chat(app.url, body(), headers([t[0]!]))).status, 200);
      assert.equal((await chat(app.url, body('again'), headers([t[1]!]))).status, 200);
    });

    it('lets exactly one of two concurrent requests with one token proceed; the other is told it is in progress', async () => {
      up.setChunkDelay(30, 6); // the first answer streams for ~180 ms
      const t = await mint.tokens('credit', 1);
      const results = await Promise.all([chat(app.url, body('same', { stream: true }), headers(t)), chat(app.url, body('same', { stream: true }), headers(t))]);
      const statuses = results.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 409]);
      const loser = results.find((r) => r.status === 409)!;
      assert.equal((loser.json() as { error: { code: string } }).error.code, 'request_in_progress');
      assert.ok(Number(loser.headers.get('retry-after')) >= 1);
      assert.equal(up.requests, 1);
      // Once the first is done, the same request gets the same streamed answer back.
      const again = await chat(app.url, body('same', { stream: true }), headers(t));
      assert.equal(again.status, 200);
      assert.equal(again.text, results.find((r) => r.status === 200)!.text);
      assert.equal(up.requests, 1);
    });

    it('keeps the token retryable for the same request after an upstream 5xx', async () => {
      const t = await mint.tokens('credit', 1);
      up.failNext({ kind: 'status', status: 503 });
      const a = await chat(app.url, body(), headers(t));
      assert.equal(a.status, 502);
      assert.equal((a.json() as { error: { retryable: boolean } }).error.retryable, true);
      const b = await chat(app.url, body(), headers(t));
      assert.equal(b.status, 200, b.text);
      assert.equal(up.requests, 2);
      // Retryable means: for this same request only.
      assert.equal((await chat(app.url, body('different'), headers(t))).status, 409);
    });

    it('keeps the token retryable after an upstream timeout and after a refused connection', async () => {
      const t = await mint.tokens('credit', 1);
      up.failNext({ kind: 'hang' });
      const a = await chat(app.url, body(), headers(t));
      assert.equal(a.status, 504);
      up.failNext({ kind: 'close' });
      const b = await chat(app.url, body(), headers(t));
      assert.equal(b.status, 502);
      const c = await chat(app.url, body(), headers(t));
      assert.equal(c.status, 200);
    });

    it('rotates to the next API key when the provider answers 429', async () => {
      await app.close();
      app = await startTestApp({
        mint,
        ...(redis ? { redisUrl: redis.url } : {}),
        config: { models: [{ id: 'm1', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl, apiKeys: ['sk-a', 'sk-b'] } } },
      });
      up.rateLimitedKeys.add('sk-a');
      for (let i = 0; i < 3; i++) assert.equal((await chat(app.url, body(`q${i}`), headers(await mint.tokens('credit', 1)))).status, 200);
      up.rateLimitedKeys.add('sk-b');
      const t = await mint.tokens('credit', 1);
      const r = await chat(app.url, body(), headers(t));
      assert.equal(r.status, 503);
      assert.equal((r.json() as { error: { code: string } }).error.code, 'upstream_busy');
      up.rateLimitedKeys.clear();
      assert.equal((await chat(app.url, body(), headers(t))).status, 200);
    });

    it('blocks with local moderation rules, with a structured refusal, and never forwards', async () => {
      const t = await mint.tokens('credit', 1);
      const r = await chat(app.url, body('please LLMTOR-MODERATION-TEST-BLOCK now'), headers(t));
      assert.equal(r.status, 400);
      const e = (r.json() as { error: { code: string; categories: string[]; moderation_provider: string; credits_spent: number } }).error;
      assert.equal(e.code, 'content_blocked');
      assert.deepEqual(e.categories, ['test']);
      assert.equal(e.moderation_provider, 'local');
      assert.equal(e.credits_spent, 1);
      assert.equal(up.requests, 0);
      // A blocked request consumes its token: the refusal is its answer, replayed on retry.
      const again = await chat(app.url, body('please LLMTOR-MODERATION-TEST-BLOCK now'), headers(t));
      assert.equal(again.status, 400);
      assert.equal(again.text, r.text);
      assert.equal((await chat(app.url, body('innocent'), headers(t))).status, 409);
    });

    it('moderates text inside multi-part messages', async () => {
      const r = await chat(
        app.url,
        { model: 'm1', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'text', text: 'LLMTOR-MODERATION-TEST-BLOCK' }] }] },
        headers(await mint.tokens('credit', 1)),
      );
      assert.equal(r.status, 400);
      assert.equal((r.json() as { error: { code: string } }).error.code, 'content_blocked');
    });

    it('rejects tokens once their key is past its redemption window', async () => {
      const t = await mint.tokens('credit', 1);
      app.setNow(Date.now() + 61 * 86_400_000);
      const r = await chat(app.url, body(), headers(t));
      assert.equal(r.status, 401);
      assert.equal((r.json() as { error: { code: string; reason: string } }).error.reason, 'unknown_key_id');
      app.setNow(undefined);
    });

    it('rejects tokens made for another issuer, forged tokens and abuse tokens used as credits', async () => {
      const other = await mint.tokens('credit', 1, 'another-issuer');
      assert.equal((await chat(app.url, body(), headers(other))).status, 401);
      const [t] = await mint.tokens('credit', 1);
      const forged = Uint8Array.from(t!);
      forged[353] = forged[353]! ^ 1;
      assert.equal((await chat(app.url, body(), headers([forged]))).status, 401);
      const perm = await mint.tokens('permanent', 1);
      assert.equal((await chat(app.url, body(), headers(perm))).status, 401);
      assert.equal(up.requests, 0);
    });

    it('requires both abuse tokens and rejects a credit token in their place', async () => {
      const t = await mint.tokens('credit', 1);
      const none = await chat(app.url, body(), { authorization: authorization(t) });
      assert.equal(none.status, 401);
      assert.equal((none.json() as { error: { code: string } }).error.code, 'abuse_tokens_required');
      const [c] = await mint.tokens('credit', 1);
      const [tr] = await mint.tokens('transient', 1);
      const wrong = await chat(app.url, body(), { authorization: authorization(t), 'llmtor-abuse': `permanent=${toBase64Url(c!)}, transient=${toBase64Url(tr!)}` });
      assert.equal(wrong.status, 401);
      assert.equal((await chat(app.url, body(), headers(t))).status, 200);
    });

    it('refuses a pseudonym its holder revoked, without spending the credit token', async () => {
      const [p] = await mint.tokens('permanent', 1);
      const [tr] = await mint.tokens('transient', 1);
      const h = `permanent=${toBase64Url(p!)}, transient=${toBase64Url(tr!)}`;
      const rev = await fetch(`${app.url}/v1/abuse/revoke`, { method: 'POST', headers: { 'llmtor-abuse': `transient=${toBase64Url(tr!)}` } });
      assert.equal(rev.status, 200);
      const t = await mint.tokens('credit', 1);
      const r = await chat(app.url, body(), { authorization: authorization(t), 'llmtor-abuse': h });
      assert.equal(r.status, 403);
      assert.equal((r.json() as { error: { code: string } }).error.code, 'pseudonym_blocked');
      assert.equal((await chat(app.url, body(), headers(t))).status, 200);
    });

    it('limits the rate per pseudonym without spending the refused tokens', async () => {
      await app.close();
      app = await startTestApp({ mint, ...(redis ? { redisUrl: redis.url } : {}), config: { models: [{ id: 'm1', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } }, rateLimit: { requests: 2, windowSeconds: 60 } } });
      const h = await mint.abuseHeader();
      const ts = await mint.tokens('credit', 3);
      assert.equal((await chat(app.url, body('a'), { authorization: authorization([ts[0]!]), 'llmtor-abuse': h })).status, 200);
      assert.equal((await chat(app.url, body('b'), { authorization: authorization([ts[1]!]), 'llmtor-abuse': h })).status, 200);
      const r = await chat(app.url, body('c'), { authorization: authorization([ts[2]!]), 'llmtor-abuse': h });
      assert.equal(r.status, 429);
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      // Another pseudonym is not affected, and the refused token is still unspent.
      assert.equal((await chat(app.url, body('c'), { authorization: authorization([ts[2]!]), 'llmtor-abuse': await mint.abuseHeader() })).status, 200);
    });
  });
}

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

describe('streamed redemption', function () {
  this.timeout(30_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let abuse: string;

  before(async () => {
    redis = await startRedis();
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
  });
  after(async () => redis.stop());
  beforeEach(async () => {
    up = new LocalStandInUpstream();
    await up.listen();
    app = await startTestApp({ mint, redisUrl: redis.url, config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } } } });
  });
  afterEach(async () => {
    await app.close();
    await up.close();
  });

  const streamBody = (text: string) => JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: text }] });

  it('passes chunks through as the upstream produces them (first chunk long before the last)', async () => {
    up.setChunkDelay(60, 5);
    const [t] = await mint.tokens('credit', 1);
    const started = Date.now();
    const times: number[] = [];
    const res = await fetch(`${app.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: authorization([t!]), 'llmtor-abuse': abuse },
      body: streamBody('hi'),
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const reader = res.body!.getReader();
    let all = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      times.push(Date.now() - started);
      all += Buffer.from(value).toString('utf8');
    }
    assert.ok(all.endsWith('data: [DONE]\n\n'));
    assert.ok(times[0]! < 150, `first bytes after ${times[0]} ms`);
    assert.ok(times.at(-1)! >= 250, `last bytes after ${times.at(-1)} ms`);
  });

  it('replays the full SSE transcript for the same request and tokens', async () => {
    const t = await mint.tokens('credit', 1);
    const a = await chat(app.url, streamBody('x'), { authorization: authorization(t), 'llmtor-abuse': abuse });
    const b = await chat(app.url, streamBody('x'), { authorization: authorization(t), 'llmtor-abuse': abuse });
    assert.equal(b.status, 200);
    assert.equal(b.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(b.headers.get('llmtor-replay'), 'true');
    assert.equal(b.text, a.text);
    assert.equal(up.requests, 1);
  });

  it('a client that disconnects mid-stream stops the upstream read; the tokens stay consumed, never reusable elsewhere', async () => {
    up.setChunkDelay(20, 200); // ~4 s stream
    const t = await mint.tokens('credit', 1);
    await new Promise<void>((resolve, reject) => {
      const req = request(`${app.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: authorization(t), 'llmtor-abuse': abuse },
      });
      req.on('response', (res) => {
        let n = 0;
        res.on('data', () => {
          if (++n === 3) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => undefined);
      setTimeout(() => reject(new Error('no stream')), 5000);
      req.end(streamBody('long'));
    });
    // The upstream notices its reader went away well before its ~4 s end.
    const deadline = Date.now() + 1500;
    while (up.streamsAbortedByReader === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(up.streamsAbortedByReader, 1);
    assert.equal(up.streamsCompleted, 0);
    // Consistent state: not "in progress" forever, not reusable for another request, no partial replay.
    const same = await chat(app.url, streamBody('long'), { authorization: authorization(t), 'llmtor-abuse': abuse });
    assert.equal(same.status, 409);
    assert.equal((same.json() as { error: { code: string } }).error.code, 'token_spent');
    const other = await chat(app.url, streamBody('other'), { authorization: authorization(t), 'llmtor-abuse': abuse });
    assert.equal(other.status, 409);
    assert.equal(up.requests, 1);
  });

  it('an upstream that breaks off mid-stream leaves the tokens retryable for the same request', async () => {
    up.failNext({ kind: 'close-mid-stream', afterChunks: 2 });
    const t = await mint.tokens('credit', 1);
    const a = await chat(app.url, streamBody('y'), { authorization: authorization(t), 'llmtor-abuse': abuse });
    assert.equal(a.status, 200); // headers were already sent
    assert.match(a.text, /"code":"upstream_failed"/);
    const b = await chat(app.url, streamBody('y'), { authorization: authorization(t), 'llmtor-abuse': abuse });
    assert.equal(b.status, 200);
    assert.ok(b.text.endsWith('data: [DONE]\n\n'));
  });
});

import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { toBase64Url } from '@llmtor/protocol';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { Mint } from './support/tokens.js';
import { startTestApp, type TestApp } from './support/testApp.js';

/** Sends raw bytes with raw header values; returns the status (fetch refuses some header bytes: those are skipped by the arbitraries). */
async function post(url: string, body: Uint8Array | string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body });
  await res.arrayBuffer();
  return res.status;
}

const printable = fc.string({ maxLength: 200 });

describe('fuzz campaign over bodies, headers and token encodings: only 4xx, never 5xx, no crash', function () {
  this.timeout(120_000);
  let redis: RedisHandle;
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let tokens: Uint8Array[];
  let abuse: string;
  const statuses = new Map<number, number>();
  const note = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);

  before(async () => {
    redis = await startRedis();
    mint = await Mint.create();
    tokens = await mint.tokens('credit', 40);
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream({ record: false });
    await up.listen();
    app = await startTestApp({ mint, redisUrl: redis.url, config: { models: [{ id: 'm', provider: 'p', bytesPerCredit: 4096 }], providers: { p: { baseUrl: up.baseUrl } }, rateLimit: { requests: 100000, windowSeconds: 60 } } });
  });
  after(async () => {
    await app.close();
    await up.close();
    await redis.stop();
    console.log(`      statuses seen: ${JSON.stringify(Object.fromEntries(statuses))}`);
  });

  const tokenEncoding = fc.oneof(
    fc.constantFrom(...[0, 1, 2, 3].map((i) => i)).map((i) => toBase64Url(tokens[i]!)),
    fc.tuple(fc.integer({ min: 0, max: 39 }), fc.integer({ min: 0, max: 353 }), fc.integer({ min: 1, max: 255 })).map(([i, pos, x]) => {
      const t = Uint8Array.from(tokens[i]!);
      t[pos] = t[pos]! ^ x;
      return toBase64Url(t);
    }),
    fc.integer({ min: 0, max: 39 }).map((i) => Buffer.from(tokens[i]!).toString('base64')), // standard alphabet with padding
    fc.tuple(fc.integer({ min: 0, max: 39 }), fc.integer({ min: 0, max: 353 })).map(([i, n]) => toBase64Url(tokens[i]!.subarray(0, n))),
    fc.uint8Array({ maxLength: 400 }).map(toBase64Url),
    fc.stringMatching(/^[A-Za-z0-9_=+/-]{0,480}$/),
    printable,
  );
  const authorizationHeader = fc.oneof(
    fc.array(tokenEncoding, { minLength: 0, maxLength: 5 }).map((ts) => ts.map((t) => `PrivateToken token=${t}`).join(', ')),
    fc.array(tokenEncoding, { minLength: 1, maxLength: 3 }).map((ts) => ts.map((t) => `PrivateToken token="${t}"`).join(',')),
    fc.tuple(fc.constantFrom('privatetoken', 'PrivateToken', 'Bearer', 'Basic', ''), printable).map(([s, r]) => `${s} ${r}`),
    fc.integer({ min: 20, max: 80 }).map((n) => Array.from({ length: n }, () => `PrivateToken token=${toBase64Url(tokens[0]!)}`).join(', ')),
    printable,
  );
  const abuseHeader = fc.oneof(fc.constant(() => abuse), printable.map((s) => () => s), tokenEncoding.map((t) => () => `permanent=${t}, transient=${t}`));
  const message = fc.record(
    { role: fc.oneof(fc.constantFrom('user', 'system', 'assistant', 'tool', 'developer'), printable), content: fc.oneof(printable, fc.jsonValue(), fc.array(fc.record({ type: fc.constantFrom('text', 'image_url', 'x'), text: printable }))) },
    { requiredKeys: [] },
  );
  const body = fc.oneof(
    fc.record({ model: fc.oneof(fc.constant('m'), printable), messages: fc.array(message, { maxLength: 4 }), stream: fc.oneof(fc.boolean(), fc.jsonValue()), temperature: fc.jsonValue(), user: fc.jsonValue() }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
    fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v) ?? ''),
    fc.uint8Array({ maxLength: 3000 }),
    printable,
    fc.integer({ min: 1, max: 200_000 }).map((n) => '['.repeat(n)),
    // Deep nesting inside an allowlisted free-form object (tool parameters).
    fc.integer({ min: 30, max: 5000 }).map((n) => `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}}]}`),
  );

  it('random bodies with valid credentials', async () => {
    await fc.assert(
      fc.asyncProperty(body, fc.integer({ min: 0, max: 39 }), async (b, i) => {
        const s = await post(app.url, b, { 'content-type': 'application/json', authorization: `PrivateToken token=${toBase64Url(tokens[i]!)}`, 'llmtor-abuse': abuse });
        note(s);
        assert.ok(s < 500, `status ${s}`);
      }),
      { numRuns: 400 },
    );
  });

  it('random Authorization and LLMTor-Abuse headers and token encodings', async () => {
    await fc.assert(
      fc.asyncProperty(authorizationHeader, abuseHeader, fc.boolean(), async (auth, ab, stream) => {
        const b = JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: 'fuzz' }] });
        let s: number;
        try {
          s = await post(app.url, b, { 'content-type': 'application/json', authorization: auth, 'llmtor-abuse': ab() });
        } catch (e) {
          // fetch itself refuses some header values (e.g. a trailing space is fine, a NUL is not): not our server's doing.
          if (e instanceof TypeError && /header/i.test(String(e.message))) return;
          throw e;
        }
        note(s);
        assert.ok(s < 500, `status ${s}`);
      }),
      { numRuns: 600 },
    );
  });

  it('the server is still healthy afterwards', async () => {
    const res = await fetch(`${app.url}/v1/models`);
    assert.equal(res.status, 200);
    assert.ok(!app.logs.join('').includes('unexpected error'), 'no unexpected error was logged');
  });
});

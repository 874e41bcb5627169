/**
 * HTTP authentication conformance of the redemption side (RFC 9110 §11, RFC
 * 9577 §2): every 401 carries a PrivateToken challenge our parser (and, in
 * interop tests, @cloudflare/privacypass-ts) reads.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { formatAuthorization, parseWwwAuthenticate, toBase64Url } from '@llmtor/protocol';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

const body = (text = 'Hello there') => ({ model: 'm1', messages: [{ role: 'user', content: text }] });

describe('redemption HTTP authentication (RFC 9110 §11, RFC 9577 §2)', function () {
  this.timeout(30_000);
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let abuse: string;

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream();
    const { baseUrl } = await up.listen();
    app = await startTestApp({
      mint,
      config: {
        models: [
          { id: 'm1', provider: 'p', priceCredits: 1, bytesPerCredit: 2048 },
          { id: 'm2', provider: 'p', priceCredits: 2, bytesPerCredit: 2048 },
        ],
        providers: { p: { baseUrl, apiKeys: ['sk-proxy-key-1'], timeoutMs: 1500 } },
        rateLimit: { requests: 1000, windowSeconds: 60 },
      },
    });
  });
  after(async () => {
    await app.close();
    await up.close();
  });

  const expect401 = async (r: Awaited<ReturnType<typeof chat>>, code: string): Promise<void> => {
    assert.equal(r.status, 401);
    assert.equal((r.json() as { error: { code: string } }).error.code, code);
    const www = r.headers.get('www-authenticate');
    assert.ok(www, `a 401 ${code} carries WWW-Authenticate`);
    const c = parseWwwAuthenticate(www);
    assert.equal(toBase64Url(c.tokenKey!), mint.keys.get('credit')!.meta.publicKey);
  };

  it('401 abuse_tokens_required carries a challenge', async () => {
    await expect401(await chat(app.url, body(), { authorization: authorization(await mint.tokens('credit', 1)) }), 'abuse_tokens_required');
  });

  it('401 invalid_token for a bad LLMTor-Abuse token carries a challenge', async () => {
    const [c] = await mint.tokens('credit', 1);
    const [tr] = await mint.tokens('transient', 1);
    const wrong = `permanent=${toBase64Url(c!)}, transient=${toBase64Url(tr!)}`;
    await expect401(await chat(app.url, body(), { authorization: authorization(await mint.tokens('credit', 1)), 'llmtor-abuse': wrong }), 'invalid_token');
  });

  it('401 invalid_token for a malformed Authorization and for a bad revocation carry a challenge', async () => {
    await expect401(await chat(app.url, body(), { authorization: 'PrivateToken token=@@', 'llmtor-abuse': abuse }), 'invalid_token');
    const [c] = await mint.tokens('credit', 1);
    const r = await fetch(`${app.url}/v1/abuse/revoke`, { method: 'POST', headers: { 'llmtor-abuse': `transient=${toBase64Url(c!)}` } });
    assert.equal(r.status, 401);
    assert.ok(parseWwwAuthenticate(r.headers.get('www-authenticate')!).challenge.length > 0);
  });

  describe('k tokens per request', () => {
    const body2 = (text: string) => ({ model: 'm2', messages: [{ role: 'user', content: text }] });
    it('one credential: token plus additional-tokens', async () => {
      const t = await mint.tokens('credit', 2);
      const h = formatAuthorization(t);
      assert.match(h, /^PrivateToken token="[^"]+", additional-tokens="[^",]+"$/);
      const r = await chat(app.url, body2('one credential'), { authorization: h, 'llmtor-abuse': abuse });
      assert.equal(r.status, 200, r.text);
    });
    it('the deprecated k credentials in one field line still work for one release', async () => {
      const t = await mint.tokens('credit', 2);
      const legacy = t.map((x) => `PrivateToken token=${toBase64Url(x)}`).join(', ');
      assert.equal((await chat(app.url, body2('legacy'), { authorization: legacy, 'llmtor-abuse': abuse })).status, 200);
    });
    it('several Authorization field lines are refused (RFC 9110 §5.3), nothing spent', async () => {
      const t = await mint.tokens('credit', 2);
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${app.url}/v1/chat/completions`, { method: 'POST' }, (res) => (res.resume(), resolve(res.statusCode ?? 0)));
        req.on('error', reject);
        req.setHeader('content-type', 'application/json');
        req.setHeader('llmtor-abuse', abuse);
        req.setHeader('authorization', t.map((x) => formatAuthorization([x])));
        req.end(JSON.stringify(body2('two lines')));
      });
      assert.equal(status, 400);
      assert.equal((await chat(app.url, body2('after'), { authorization: formatAuthorization(t), 'llmtor-abuse': abuse })).status, 200, 'the tokens were not spent');
    });
  });
});

/**
 * Interop with @cloudflare/privacypass-ts 0.9.0 against the real proxy, in
 * process, on a real redis-server: its client gets tokens from our issuer
 * (single TokenRequest and generic batch), its parser reads the challenge our
 * redemption side sends, and its Authorization header redeems.
 */
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { AuthorizationHeader, genericBatched, publicVerif, Token, TokenChallenge, TOKEN_TYPES, WWWAuthenticateHeader } from '@cloudflare/privacypass-ts';
import { startRedis, type RedisHandle } from '@llmtor/devtools';
import { fromBase64Url, MEDIA_TYPE_BATCH_REQUEST, MEDIA_TYPE_BATCH_RESPONSE, MEDIA_TYPE_TOKEN_REQUEST, MEDIA_TYPE_TOKEN_RESPONSE, toHex, verifyToken } from '@llmtor/protocol';
import { adminGrant, createAccount, fetchDirectory } from '../../src/dev/issuanceClient.js';
import { ADMIN_TOKEN, startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { chat, startTestApp } from '../redemption/support/testApp.js';
import { Mint } from '../redemption/support/tokens.js';

const { BlindRSAMode, Client, Origin } = publicVerif;

async function verifyWithTheirOrigin(token: Uint8Array, spki: Uint8Array): Promise<boolean> {
  const key = await webcrypto.subtle.importKey('spki', publicVerif.convertRSASSAPSSToEnc(spki), TOKEN_TYPES.BLIND_RSA.rsaParams, true, ['verify']);
  return new Origin(BlindRSAMode.PSS).verify(Token.deserialize(TOKEN_TYPES.BLIND_RSA, token), key);
}

describe('interop: @cloudflare/privacypass-ts client against the proxy (real redis-server)', function () {
  this.timeout(60_000);
  let redis: RedisHandle;
  let proxy: TestProxy;
  let accountKey: string;
  let spki: Uint8Array;

  before(async () => {
    redis = await startRedis();
    proxy = await startIssuanceProxy({ redisUrl: redis.url });
    accountKey = await createAccount(proxy.url);
    await adminGrant(proxy.url, ADMIN_TOKEN, accountKey, 10);
    const dir = await fetchDirectory(proxy.url);
    spki = fromBase64Url(dir['token-keys'].find((k) => k.purpose === 'credit')!['token-key']);
  });
  after(async () => {
    await proxy?.stop();
    await redis?.stop();
  });

  const challenge = () => new TokenChallenge(TOKEN_TYPES.BLIND_RSA.value, 'interop.issuer', new Uint8Array(0));
  const ourKey = (id: Uint8Array) => proxy.keys2.entries.find((e) => toHex(e.keyId) === toHex(id))?.publicKey;

  it('a single TokenRequest (RFC 9578 §6) issues a token both libraries verify', async () => {
    const client = new Client(BlindRSAMode.PSS);
    const req = await client.createTokenRequest(challenge(), spki);
    const res = await fetch(`${proxy.url}/token-request`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST },
      body: req.serialize(),
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get('content-type'), MEDIA_TYPE_TOKEN_RESPONSE);
    const token = (await client.finalize(client.deserializeTokenResponse(new Uint8Array(await res.arrayBuffer())))).serialize();
    verifyToken(token, ourKey);
    assert.equal(await verifyWithTheirOrigin(token, spki), true);
  });

  it('a generic batch built by privacypass-ts (259-byte items) issues tokens both libraries verify', async () => {
    const clients = [0, 1, 2].map(() => new Client(BlindRSAMode.PSS));
    const reqs = await Promise.all(clients.map((c) => c.createTokenRequest(challenge(), spki)));
    const body = new genericBatched.BatchedTokenRequest(reqs.map((r) => new genericBatched.TokenRequest(r))).serialize();
    const res = await fetch(`${proxy.url}/token-request`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_BATCH_REQUEST },
      body,
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(res.headers.get('content-type'), MEDIA_TYPE_BATCH_RESPONSE);
    const parsed = genericBatched.GenericBatchTokenResponse.deserialize(new Uint8Array(await res.arrayBuffer()));
    assert.equal(parsed.tokenResponses.length, 3);
    for (let i = 0; i < 3; i++) {
      const r = parsed.tokenResponses[i]!.tokenResponse as InstanceType<typeof publicVerif.TokenResponse>;
      const token = (await clients[i]!.finalize(r)).serialize();
      verifyToken(token, ourKey);
      assert.equal(await verifyWithTheirOrigin(token, spki), true);
    }
  });

  it('its parser reads our 401 challenge, and its Authorization header redeems', async () => {
    const mint = await Mint.create();
    const up = new LocalStandInUpstream();
    const { baseUrl } = await up.listen();
    const app = await startTestApp({
      mint,
      config: { models: [{ id: 'm1', provider: 'p', priceCredits: 1, bytesPerCredit: 2048 }], providers: { p: { baseUrl, apiKeys: ['sk-x'], timeoutMs: 1500 } } },
    });
    try {
      const body = { model: 'm1', messages: [{ role: 'user', content: 'hi' }] };
      const abuse = await mint.abuseHeader();
      for (const headers of [{ 'llmtor-abuse': abuse }, {}] as Record<string, string>[]) {
        const r = await chat(app.url, body, headers);
        assert.equal(r.status, 401);
        const www = WWWAuthenticateHeader.parse(r.headers.get('www-authenticate')!);
        assert.equal(www.length, 1);
        assert.equal(www[0]!.challenge.issuerName, mint.issuer);
        assert.equal(toHex(www[0]!.tokenKey), toHex(fromBase64Url(mint.keys.get('credit')!.meta.publicKey)));
      }
      // Their client, our signer (the Mint's credit key), their header.
      const r401 = await chat(app.url, body, { 'llmtor-abuse': abuse });
      const theirChallenge = WWWAuthenticateHeader.parse(r401.headers.get('www-authenticate')!)[0]!;
      const client = new Client(BlindRSAMode.PSS);
      const req = await client.createTokenRequest(theirChallenge.challenge, theirChallenge.tokenKey);
      const blindSig = mint.keys.get('credit')!.signer.sign(req.blindedMsg);
      const token = await client.finalize(new publicVerif.TokenResponse(blindSig));
      const ok = await chat(app.url, body, { authorization: new AuthorizationHeader(token).toString(true), 'llmtor-abuse': abuse });
      assert.equal(ok.status, 200, ok.text);
    } finally {
      await app.close();
      await up.close();
    }
  });
});

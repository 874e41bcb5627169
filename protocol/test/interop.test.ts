/**
 * Interop with @cloudflare/privacypass-ts (pinned devDependency): its parsers
 * read every header we write, its verifier accepts tokens from our clients,
 * and its generic-batch codec agrees with ours and with
 * draft-ietf-privacypass-batched-tokens-08 Appendix A.4 byte for byte.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { AuthorizationHeader, genericBatched, publicVerif, Token, TOKEN_TYPES, WWWAuthenticateHeader } from '@cloudflare/privacypass-ts';
import {
  challengeDigest,
  decodeBatchTokenRequest,
  decodeBatchTokenResponse,
  defaultChallenge,
  encodeBatchTokenRequest,
  encodeBatchTokenResponse,
  encodeTokenChallenge,
  formatAuthorization,
  formatWwwAuthenticate,
  fromHex,
  NativeTokenClient,
  pssSpkiFromPublicKey,
  toHex,
} from '@llmtor/protocol';
import { TokenClient } from '@llmtor/protocol/client';
import { BlindSigner } from '@llmtor/protocol/server';
import { genericBatchVectors } from './support.js';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signer = new BlindSigner(privateKey);
const spki = pssSpkiFromPublicKey(privateKey);
const challenge = defaultChallenge('issuer.interop.test');
const digest = challengeDigest(challenge);

async function theirPublicKey(): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('spki', publicVerif.convertRSASSAPSSToEnc(spki), TOKEN_TYPES.BLIND_RSA.rsaParams, true, ['verify']);
}

describe('interop: @cloudflare/privacypass-ts 0.9.0', () => {
  it('its Origin verifies tokens from both our clients', async () => {
    const origin = new publicVerif.Origin(publicVerif.BlindRSAMode.PSS);
    const key = await theirPublicKey();
    for (const client of [await NativeTokenClient.forKey(spki), await TokenClient.forKey(spki)]) {
      const { request, pending } = await client.createRequest(challenge);
      const token = await client.finalize(pending, { blindSig: signer.sign(request.blindedMsg) });
      const theirs = Token.deserialize(TOKEN_TYPES.BLIND_RSA, token);
      assert.equal(await origin.verify(theirs, key), true);
      assert.equal(toHex(theirs.authInput.challengeDigest), toHex(digest));
      const forged = Uint8Array.from(token);
      forged[300] = forged[300]! ^ 1;
      assert.equal(await origin.verify(Token.deserialize(TOKEN_TYPES.BLIND_RSA, forged), key), false);
    }
  });

  it('its parsers read our WWW-Authenticate (padded) and Authorization, single and k tokens', async () => {
    const www = WWWAuthenticateHeader.parse(formatWwwAuthenticate({ challenge: encodeTokenChallenge(challenge), tokenKey: spki, maxAge: 60 }));
    assert.equal(www.length, 1);
    assert.equal(toHex(www[0]!.challenge.serialize()), toHex(encodeTokenChallenge(challenge)));
    assert.equal(toHex(www[0]!.tokenKey), toHex(spki));
    assert.equal(www[0]!.maxAge, 60);
    const client = await NativeTokenClient.forKey(spki);
    const tokens: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const { request, pending } = await client.createRequest(challenge);
      tokens.push(await client.finalize(pending, { blindSig: signer.sign(request.blindedMsg) }));
    }
    const one = AuthorizationHeader.parse(TOKEN_TYPES.BLIND_RSA, formatAuthorization(tokens.slice(0, 1)));
    assert.deepEqual(one.map((h) => toHex(h.token.serialize())), [toHex(tokens[0]!)]);
    // k tokens: one credential; a plain RFC 9577 reader sees its `token` and ignores additional-tokens.
    const k = AuthorizationHeader.parse(TOKEN_TYPES.BLIND_RSA, formatAuthorization(tokens));
    assert.deepEqual(k.map((h) => toHex(h.token.serialize())), [toHex(tokens[0]!)]);
  });

  it('its generic batch codec reads our batches and we read its batches (259-byte items)', async () => {
    const client = await NativeTokenClient.forKey(spki);
    const made = await client.createRequests(digest, 3);
    const ours = encodeBatchTokenRequest(made.map((m) => m.request));
    const parsed = genericBatched.BatchedTokenRequest.deserialize(ours);
    assert.equal(parsed.tokenRequests.length, 3);
    assert.equal(toHex(parsed.serialize()), toHex(ours));
    assert.deepEqual(decodeBatchTokenRequest(parsed.serialize()).map((r) => toHex(r.blindedMsg)), made.map((m) => toHex(m.request.blindedMsg)));
    const resp = encodeBatchTokenResponse([{ blindSig: signer.sign(made[0]!.request.blindedMsg) }, null, { blindSig: signer.sign(made[2]!.request.blindedMsg) }]);
    const theirResp = genericBatched.GenericBatchTokenResponse.deserialize(resp);
    assert.equal(theirResp.tokenResponses[1]!.tokenResponse, null);
    assert.equal(toHex(theirResp.serialize()), toHex(resp));
  });

  it('both codecs reproduce the draft-08 Appendix A.4 type 0x0002 vectors byte for byte', () => {
    for (const v of genericBatchVectors) {
      const theirs = genericBatched.BatchedTokenRequest.deserialize(fromHex(v.token_request));
      assert.equal(toHex(theirs.serialize()), v.token_request);
      assert.equal(toHex(encodeBatchTokenRequest(decodeBatchTokenRequest(fromHex(v.token_request)))), v.token_request);
      assert.equal(toHex(genericBatched.GenericBatchTokenResponse.deserialize(fromHex(v.token_response)).serialize()), v.token_response);
      assert.equal(toHex(encodeBatchTokenResponse(decodeBatchTokenResponse(fromHex(v.token_response)))), v.token_response);
    }
  });
});

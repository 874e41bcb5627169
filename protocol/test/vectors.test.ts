/**
 * Official test vectors, checked byte for byte: RFC 9474 Appendix A.3
 * (RSABSSA-SHA384-PSS-Deterministic, 4096-bit key) and the RFC 9578 type 0x0002
 * issuance vectors. Randomness (salt, blinding factor, nonce) is fixed from the
 * vector; everything else is computed by our code and the client library.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RSABSSA } from '@cloudflare/blindrsa-ts';
import {
  challengeDigest,
  decodeToken,
  decodeTokenChallenge,
  encodeTokenRequest,
  fromHex,
  pssSpkiFromPublicKey,
  publicKeyFromPssSpki,
  toHex,
  tokenKeyId,
  verifyToken,
  verifyTokenSignature,
} from '@llmtor/protocol';
import { TokenClient } from '@llmtor/protocol/client';
import { BlindSigner } from '@llmtor/protocol/server';

const dir = new URL('../../test/vectors/', import.meta.url);
const v9474 = JSON.parse(readFileSync(new URL('rfc9474-sha384-pss-deterministic.json', dir), 'utf8')) as Record<string, string>;
const v9578 = JSON.parse(readFileSync(new URL('rfc9578-type2-issuance.json', dir), 'utf8')) as { vectors: Record<string, string>[] };

const big = (hex: string) => BigInt('0x' + hex);
const b64 = (n: bigint, len: number) => Buffer.from(n.toString(16).padStart(len * 2, '0'), 'hex').toString('base64url');
function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}
function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}

/** Replays fixed bytes to crypto.getRandomValues (what blindrsa-ts uses for the salt and r), in order. */
async function withRandomness<T>(queue: Uint8Array[], f: () => Promise<T>): Promise<T> {
  const c = globalThis.crypto as { getRandomValues: <A extends ArrayBufferView>(a: A) => A };
  const original = c.getRandomValues;
  c.getRandomValues = <A extends ArrayBufferView>(a: A): A => {
    if (a.byteLength === 0) return a;
    const next = queue.shift();
    assert.ok(next && next.length === a.byteLength, `unexpected randomness request of ${a.byteLength} bytes`);
    new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(next);
    return a;
  };
  try {
    return await f();
  } finally {
    c.getRandomValues = original;
  }
}

describe('RFC 9474 Appendix A.3: RSABSSA-SHA384-PSS-Deterministic', () => {
  const v = v9474;
  const n = big(v.n!);
  const p = big(v.p!);
  const q = big(v.q!);
  const d = big(v.d!);
  const kLen = 512;
  const jwk = {
    kty: 'RSA',
    n: b64(n, kLen),
    e: b64(big(v.e!), 3),
    d: b64(d, kLen),
    p: b64(p, kLen / 2),
    q: b64(q, kLen / 2),
    dp: b64(d % (p - 1n), kLen / 2),
    dq: b64(d % (q - 1n), kLen / 2),
    qi: b64(modInverse(q, p), kLen / 2),
  };
  const privateKey = createPrivateKey({ key: jwk, format: 'jwk' });
  const suite = RSABSSA.SHA384.PSS.Deterministic();

  it('blinding with the vector salt and blinding factor gives blinded_msg (blindrsa-ts)', async () => {
    const pub = await webcrypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, ext: true }, { name: 'RSA-PSS', hash: 'SHA-384' }, true, ['verify']);
    const r = modInverse(big(v.inv!), n);
    const rBytes = fromHex(r.toString(16).padStart(kLen * 2, '0'));
    const prepared = suite.prepare(fromHex(v.msg!));
    assert.equal(toHex(prepared), v.prepared_msg);
    const out = await withRandomness([fromHex(v.salt!), rBytes], () => suite.blind(pub as never, prepared));
    assert.equal(toHex(out.blindedMsg), v.blinded_msg);
    assert.equal(toHex(out.inv), v.inv);
  });
  it('the native signer produces blind_sig byte for byte (and self-checks it)', () => {
    const signer = new BlindSigner(privateKey, { modulusBytes: kLen });
    assert.equal(toHex(signer.sign(fromHex(v.blinded_msg!))), v.blind_sig);
  });
  it('finalize gives sig, and sig verifies as RSASSA-PSS SHA-384 salt 48', async () => {
    const pub = await webcrypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, ext: true }, { name: 'RSA-PSS', hash: 'SHA-384' }, true, ['verify']);
    const sig = await suite.finalize(pub as never, fromHex(v.prepared_msg!), fromHex(v.blind_sig!), fromHex(v.inv!));
    assert.equal(toHex(sig), v.sig);
    assert.equal(modPow(big(v.sig!), big(v.e!), n), big(v.encoded_msg!));
  });
});

describe('RFC 9578 type 0x0002 issuance vectors', () => {
  v9578.vectors.forEach((v, i) => {
    it(`vector ${i + 1}: key id, TokenRequest, TokenResponse and Token byte for byte`, async () => {
      const sk = createPrivateKey(v.skS!);
      // Our RSASSA-PSS SPKI encoding matches the vector's pkS exactly.
      assert.equal(toHex(pssSpkiFromPublicKey(sk)), v.pkS);
      assert.equal(publicKeyFromPssSpki(fromHex(v.pkS!)).export({ format: 'jwk' }).n, createPublicKey(sk).export({ format: 'jwk' }).n);
      const challenge = fromHex(v.token_challenge!);
      assert.equal(decodeTokenChallenge(challenge).tokenType, 2);

      const client = await TokenClient.forKey(fromHex(v.pkS!));
      const n = big(Buffer.from(createPublicKey(sk).export({ format: 'jwk' }).n!, 'base64url').toString('hex'));
      const { request, pending } = await withRandomness([fromHex(v.salt!), fromHex(v.blind!)], () =>
        client.createRequest(challengeDigest(challenge), { nonce: fromHex(v.nonce!) }),
      );
      assert.equal(toHex(encodeTokenRequest(request)), v.token_request);
      assert.equal(big(Buffer.from(pending.inv, 'base64url').toString('hex')), modInverse(big(v.blind!), n));

      const signer = new BlindSigner(sk);
      const blindSig = signer.sign(request.blindedMsg);
      assert.equal(toHex(blindSig), v.token_response);

      const token = await client.finalize(pending, { blindSig });
      assert.equal(toHex(token), v.token);
      const t = decodeToken(token);
      assert.deepEqual(t.tokenKeyId, tokenKeyId(fromHex(v.pkS!)));
      verifyToken(token, () => signer.publicKey, challengeDigest(challenge));
      verifyTokenSignature(fromHex(v.token!), publicKeyFromPssSpki(fromHex(v.pkS!)));
    });
  });
});

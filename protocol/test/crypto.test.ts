import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';
import { RSABSSA } from '@cloudflare/blindrsa-ts';
import fc from 'fast-check';
import {
  ProtocolError,
  challengeDigest,
  decodeToken,
  defaultChallenge,
  encodeTokenRequest,
  decodeTokenRequest,
  publicKeyFromPssSpki,
  pssSpkiFromPublicKey,
  tokenKeyId,
  truncatedKeyId,
  verifyToken,
  verifyTokenSignature,
  bytesEqual,
} from '@llmtor/protocol';
import { TokenClient } from '@llmtor/protocol/client';
import { BlindSigner } from '@llmtor/protocol/server';
import { testKey } from './support.js';

const suite = RSABSSA.SHA384.PSS.Deterministic();
type SuiteKey = Parameters<typeof suite.blindSign>[0];

async function blindrsaKeys(key: KeyObject): Promise<{ priv: SuiteKey; pub: SuiteKey }> {
  const jwk = key.export({ format: 'jwk' });
  const alg = { name: 'RSA-PSS', hash: 'SHA-384' };
  const priv = await webcrypto.subtle.importKey('jwk', { ...jwk, alg: undefined, ext: true }, alg, true, ['sign']);
  const pub = await webcrypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, ext: true }, alg, true, ['verify']);
  return { priv: priv as unknown as SuiteKey, pub: pub as unknown as SuiteKey };
}

function lookupFor(signer: BlindSigner) {
  return (id: Uint8Array) => (bytesEqual(id, signer.keyId) ? signer.publicKey : undefined);
}

describe('keys and key ids', () => {
  it('our RSASSA-PSS SPKI parses in OpenSSL as an rsa-pss key with SHA-384 / MGF1-SHA-384 / salt 48 and the same modulus', () => {
    const key = testKey();
    const parsed = createPublicKey({ key: Buffer.from(pssSpkiFromPublicKey(key)), format: 'der', type: 'spki' });
    assert.equal(parsed.asymmetricKeyType, 'rsa-pss');
    const d = parsed.asymmetricKeyDetails!;
    assert.equal(d.modulusLength, 2048);
    assert.equal(d.hashAlgorithm, 'sha384');
    assert.equal(d.mgf1HashAlgorithm, 'sha384');
    assert.equal(d.saltLength, 48);
    // ...and an rsa-pss KeyObject maps to the same SPKI and key id as its rsaEncryption twin.
    assert.deepEqual(pssSpkiFromPublicKey(parsed), pssSpkiFromPublicKey(key));
  });
  it('converts the PSS SPKI back into an rsaEncryption key with the same modulus', () => {
    const key = testKey();
    const spki = pssSpkiFromPublicKey(key);
    const pub = publicKeyFromPssSpki(spki);
    assert.equal(pub.asymmetricKeyType, 'rsa');
    assert.equal(pub.export({ format: 'jwk' }).n, key.export({ format: 'jwk' }).n);
    assert.equal(truncatedKeyId(tokenKeyId(spki)), tokenKeyId(key)[31]);
  });
  it('refuses an rsaEncryption SPKI or a 3072-bit key where a type 0x0002 key is expected', () => {
    const key = testKey();
    const plain = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
    assert.throws(() => publicKeyFromPssSpki(plain), (e: unknown) => e instanceof ProtocolError && e.code === 'unsupported_key');
    const big = generateKeyPairSync('rsa', { modulusLength: 3072 }).publicKey;
    assert.throws(() => publicKeyFromPssSpki(pssSpkiFromPublicKey(big)), (e: unknown) => e instanceof ProtocolError && e.code === 'unsupported_key');
  });
});

describe('native signer', () => {
  it('is byte-identical to blindrsa-ts blindSign for the same key and input', async () => {
    const key = testKey();
    const signer = new BlindSigner(key);
    const { priv, pub } = await blindrsaKeys(key);
    for (let i = 0; i < 3; i++) {
      const { blindedMsg } = await suite.blind(pub, suite.prepare(new Uint8Array(98).fill(i)));
      assert.deepEqual(signer.sign(blindedMsg), await suite.blindSign(priv, blindedMsg));
    }
  });
  it('produces blind signatures that blindrsa-ts finalize accepts, and tokens the native verifier accepts', async () => {
    const key = testKey();
    const signer = new BlindSigner(key);
    const client = await TokenClient.forKey(pssSpkiFromPublicKey(key));
    const challenge = defaultChallenge('issuer.example');
    const { request, pending } = await client.createRequest(challenge);
    const wire = decodeTokenRequest(encodeTokenRequest(request));
    assert.equal(wire.truncatedTokenKeyId, signer.keyId[31]);
    const token = await client.finalize(pending, { blindSig: signer.sign(wire.blindedMsg) });
    const t = verifyToken(token, lookupFor(signer), challengeDigest(challenge));
    assert.deepEqual(t.tokenKeyId, signer.keyId);
  });
  it('a token made end to end by blindrsa-ts (blind, blindSign, finalize) verifies natively', async () => {
    const key = testKey();
    const signer = new BlindSigner(key);
    const { priv, pub } = await blindrsaKeys(key);
    const input = new Uint8Array(98);
    input[1] = 2;
    input.set(new Uint8Array(32).fill(5), 2);
    input.set(challengeDigest(defaultChallenge('x')), 34);
    input.set(signer.keyId, 66);
    const { blindedMsg, inv } = await suite.blind(pub, suite.prepare(input));
    const sig = await suite.finalize(pub, input, await suite.blindSign(priv, blindedMsg), inv);
    const token = new Uint8Array(354);
    token.set(input);
    token.set(sig, 98);
    verifyToken(token, lookupFor(signer));
  });
  it('rejects blinded messages of the wrong length or not below the modulus', () => {
    const signer = new BlindSigner(testKey());
    assert.throws(() => signer.sign(new Uint8Array(255)), (e: unknown) => e instanceof ProtocolError && e.code === 'wrong_length');
    assert.throws(() => signer.sign(new Uint8Array(257)), (e: unknown) => e instanceof ProtocolError && e.code === 'wrong_length');
    assert.throws(() => signer.sign(new Uint8Array(256).fill(0xff)), (e: unknown) => e instanceof ProtocolError && e.code === 'message_out_of_range');
    const n = Buffer.from(signer.publicKey.export({ format: 'jwk' }).n!, 'base64url');
    assert.throws(() => signer.sign(new Uint8Array(n)), (e: unknown) => e instanceof ProtocolError && e.code === 'message_out_of_range');
  });
  it('refuses to return a faulty signature: a key with corrupted d and CRT exponent fails its self-check', () => {
    const jwk = testKey().export({ format: 'jwk' });
    const flip = (v: string) => {
      const b = Buffer.from(v, 'base64url');
      b[b.length - 1]! ^= 0x02;
      return b.toString('base64url');
    };
    const faulty = createPrivateKey({ key: { ...jwk, d: flip(jwk.d!), dp: flip(jwk.dp!) }, format: 'jwk' });
    const signer = new BlindSigner(faulty);
    assert.throws(() => signer.sign(new Uint8Array(256).fill(1)), (e: unknown) => e instanceof ProtocolError && e.code === 'signing_failure');
  });
  it('refuses rsa-pss typed keys and keys of the wrong size', () => {
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey;
    assert.throws(() => new BlindSigner(pss), (e: unknown) => e instanceof ProtocolError && e.code === 'unsupported_key');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    assert.throws(() => new BlindSigner(small), (e: unknown) => e instanceof ProtocolError && e.code === 'unsupported_key');
  });
});

describe('verification', () => {
  let token: Uint8Array;
  let signer: BlindSigner;
  before(async () => {
    signer = new BlindSigner(testKey());
    const client = await TokenClient.forKey(pssSpkiFromPublicKey(testKey()));
    const { request, pending } = await client.createRequest(defaultChallenge('issuer.example'));
    token = await client.finalize(pending, { blindSig: signer.sign(request.blindedMsg) });
  });
  it('a tampered nonce, challenge digest, key id or authenticator fails', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 353 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const t = Uint8Array.from(token);
        t[i] = t[i]! ^ x;
        // The lookup hands back the key whatever the (possibly tampered) key id: the signature itself must fail.
        assert.throws(
          () => verifyToken(t, () => signer.publicKey),
          (e: unknown) => e instanceof ProtocolError && e.code === 'bad_signature',
        );
      }),
      { numRuns: 300 },
    );
  });
  it('a signature under another key fails', () => {
    const other = new BlindSigner(testKey(1));
    assert.throws(() => verifyTokenSignature(token, other.publicKey), (e: unknown) => e instanceof ProtocolError && e.code === 'bad_signature');
  });
  it('an unknown key id and a foreign challenge are reported as such', () => {
    assert.throws(() => verifyToken(token, () => undefined), (e: unknown) => e instanceof ProtocolError && e.code === 'unknown_key_id');
    assert.throws(
      () => verifyToken(token, () => signer.publicKey, challengeDigest(defaultChallenge('other.example'))),
      (e: unknown) => e instanceof ProtocolError && e.code === 'challenge_mismatch',
    );
    assert.equal(decodeToken(token).tokenType, 2);
  });
});

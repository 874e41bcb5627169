/**
 * The native client (nativeBlind.ts): RFC 9474 A.3 and RFC 9578 type 0x0002
 * vectors byte for byte, and cross-checked against blindrsa-ts (TokenClient):
 * the same randomness gives the same bytes, and pending state made by one
 * finalizes with the other.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  BatchSizeMismatchError,
  blindCore,
  decodeBatchTokenRequest,
  encodeBatchTokenResponse,
  challengeDigest,
  defaultChallenge,
  encodeTokenRequest,
  finalizeCore,
  fromHex,
  NativeTokenClient,
  ProtocolError,
  pssSpkiFromPublicKey,
  toHex,
  verifyToken,
} from '@llmtor/protocol';
import { TokenClient } from '@llmtor/protocol/client';
import { BlindSigner } from '@llmtor/protocol/server';

const dir = new URL('../../test/vectors/', import.meta.url);
const v9474 = JSON.parse(readFileSync(new URL('rfc9474-sha384-pss-deterministic.json', dir), 'utf8')) as Record<string, string>;
const v9578 = JSON.parse(readFileSync(new URL('rfc9578-type2-issuance.json', dir), 'utf8')) as { vectors: Record<string, string>[] };

const big = (hex: string) => BigInt('0x' + hex);
const hexOf = (x: bigint, len: number) => x.toString(16).padStart(len * 2, '0');
function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return ((s0 % m) + m) % m;
}

/** Replays fixed bytes to crypto.getRandomValues (what blindrsa-ts draws the salt and r from), in order. */
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

describe('native blind client', () => {
  it('RFC 9474 A.3 (4096-bit): blinded_msg, inv and sig byte for byte', () => {
    const v = v9474;
    const n = big(v.n!);
    const pkcs1 = new Uint8Array(
      createPublicKey({ key: { kty: 'RSA', n: Buffer.from(hexOf(n, 512), 'hex').toString('base64url'), e: Buffer.from(v.e!.padStart(6, '0'), 'hex').toString('base64url') }, format: 'jwk' }).export({ type: 'pkcs1', format: 'der' }),
    );
    const r = modInverse(big(v.inv!), n);
    const out = blindCore({ pkcs1, msgs: [fromHex(v.prepared_msg!)], salts: [fromHex(v.salt!)], rs: [fromHex(hexOf(r, 512))] });
    assert.equal(toHex(out.blindedMsgs[0]!), v.blinded_msg);
    assert.equal(toHex(out.invs[0]!), v.inv);
    const [sig] = finalizeCore({ pkcs1, items: [{ msg: fromHex(v.prepared_msg!), blindSig: fromHex(v.blind_sig!), inv: out.invs[0]! }] });
    assert.equal(toHex(sig!), v.sig);
  });

  v9578.vectors.forEach((v, i) => {
    it(`RFC 9578 type 0x0002 vector ${i + 1}: TokenRequest and Token byte for byte`, async () => {
      const client = await NativeTokenClient.forKey(fromHex(v.pkS!));
      const challenge = fromHex(v.token_challenge!);
      const { request, pending } = await client.createRequest(challengeDigest(challenge), { nonce: fromHex(v.nonce!), salt: fromHex(v.salt!), r: fromHex(v.blind!) });
      assert.equal(toHex(encodeTokenRequest(request)), v.token_request);
      const token = await client.finalize(pending, { blindSig: fromHex(v.token_response!) });
      assert.equal(toHex(token), v.token);
    });
  });

  describe('against blindrsa-ts (TokenClient) on a fresh key', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const signer = new BlindSigner(privateKey);
    const spki = pssSpkiFromPublicKey(privateKey);
    const digest = challengeDigest(defaultChallenge('issuer.test'));

    it('the same nonce, salt and r give the same request, inverse and token', async () => {
      const native = await NativeTokenClient.forKey(spki);
      const reference = await TokenClient.forKey(spki);
      for (let k = 0; k < 5; k++) {
        const nonce = new Uint8Array(32).fill(k);
        const salt = new Uint8Array(48).fill(k + 1);
        const n = big(Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).n!, 'base64url').toString('hex'));
        const r = fromHex(hexOf((big('1234567890abcdef'.repeat(8)) * BigInt(k + 3)) % n, 256));
        const a = await native.createRequest(digest, { nonce, salt, r });
        const b = await withRandomness([salt, r], () => reference.createRequest(digest, { nonce }));
        assert.equal(toHex(a.request.blindedMsg), toHex(b.request.blindedMsg));
        assert.deepEqual(a.pending, b.pending);
        const blindSig = signer.sign(a.request.blindedMsg);
        assert.equal(toHex(await native.finalize(a.pending, { blindSig })), toHex(await reference.finalize(b.pending, { blindSig })));
      }
    });

    it('pending tokens made by one client finalize with the other', async () => {
      const native = await NativeTokenClient.forKey(spki);
      const reference = await TokenClient.forKey(spki);
      const fromRef = await reference.createRequest(digest);
      const t1 = await native.finalize(fromRef.pending, { blindSig: signer.sign(fromRef.request.blindedMsg) });
      verifyToken(t1, () => signer.publicKey, digest);
      const fromNative = await native.createRequest(digest);
      const t2 = await reference.finalize(fromNative.pending, { blindSig: signer.sign(fromNative.request.blindedMsg) });
      verifyToken(t2, () => signer.publicKey, digest);
    });

    it('a batch blinded and finalized in a worker thread gives valid, distinct tokens', async function () {
      this.timeout(20_000);
      const native = await NativeTokenClient.forKey(spki);
      const made = await native.createRequests(digest, 24);
      assert.equal(new Set(made.map((m) => toHex(m.request.blindedMsg))).size, 24);
      const tokens = await native.finalizeMany(
        made.map((m) => m.pending),
        made.map((m) => ({ blindSig: signer.sign(m.request.blindedMsg) })),
      );
      assert.equal(new Set(tokens.map(toHex)).size, 24);
      for (const t of tokens) verifyToken(t, () => signer.publicKey, digest);
      const small = await native.createRequests(digest, 3); // in-line path
      const ts = await native.finalizeMany(
        small.map((m) => m.pending),
        small.map((m) => ({ blindSig: signer.sign(m.request.blindedMsg) })),
      );
      for (const t of ts) verifyToken(t, () => signer.publicKey, digest);
    });

    it('batch helpers: one batch body out, refused items null, a short answer refused whole', async () => {
      const native = await NativeTokenClient.forKey(spki);
      const { body, pending } = await native.createBatch(digest, 4);
      const requests = decodeBatchTokenRequest(body);
      assert.equal(requests.length, 4);
      assert.equal(pending.length, 4);
      // The issuer refuses item 2 (quota): the other three become tokens, in place.
      const answer = encodeBatchTokenResponse(requests.map((r, i) => (i === 2 ? null : { blindSig: signer.sign(r.blindedMsg) })));
      const tokens = await native.finalizeBatch(pending, answer);
      assert.equal(tokens[2], null);
      for (const i of [0, 1, 3]) verifyToken(tokens[i]!, () => signer.publicKey, digest);
      const short = encodeBatchTokenResponse(requests.slice(0, 3).map((r) => ({ blindSig: signer.sign(r.blindedMsg) })));
      await assert.rejects(native.finalizeBatch(pending, short), (e: unknown) => e instanceof BatchSizeMismatchError && e.answered === 3 && e.requested === 4);
      const allRefused = await native.finalizeBatch(pending, encodeBatchTokenResponse([null, null, null, null]));
      assert.deepEqual(allRefused, [null, null, null, null]);
    });

    it('a wrong blind signature is refused, never turned into a token', async () => {
      const native = await NativeTokenClient.forKey(spki);
      const { request, pending } = await native.createRequest(digest);
      const bad = Uint8Array.from(signer.sign(request.blindedMsg));
      bad[100] = bad[100]! ^ 1;
      await assert.rejects(native.finalize(pending, { blindSig: bad }), (e: unknown) => e instanceof ProtocolError && e.code === 'bad_signature');
      await assert.rejects(native.finalize(pending, { blindSig: new Uint8Array(256).fill(0xff) }), (e: unknown) => e instanceof ProtocolError && e.code === 'bad_signature');
    });
  });
});

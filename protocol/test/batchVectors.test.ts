/**
 * Generic batch framing against draft-ietf-privacypass-batched-tokens-08
 * Appendix A.4 (vectors 2 and 4, the type 0x0002 batches), byte for byte:
 * each item is the 259-byte RFC 9578 TokenRequest, each response item is
 * present || token_type || blind_sig. The vectors give the blinding factor r
 * and the final token; the blinded message is (sig · r)^e mod n and the blind
 * signature sig · r mod n, which our signer must reproduce from skS.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import {
  decodeBatchTokenRequest,
  decodeBatchTokenRequestFramed,
  decodeBatchTokenResponse,
  decodeToken,
  encodeBatchTokenRequest,
  encodeBatchTokenResponse,
  fromHex,
  publicKeyFromPssSpki,
  toHex,
  tokenKeyId,
  truncatedKeyId,
  verifyTokenSignature,
  writeVarint,
  varintLength,
  type TokenRequest,
} from '@llmtor/protocol';
import { BlindSigner } from '@llmtor/protocol/server';
import { genericBatchVectors } from './support.js';

const big = (b: Uint8Array) => BigInt('0x' + (toHex(b) || '0'));
const bytesOf = (x: bigint, len: number) => fromHex(x.toString(16).padStart(len * 2, '0'));
function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}

describe('generic batch framing (draft-ietf-privacypass-batched-tokens-08 §6, Appendix A.4)', () => {
  for (const v of genericBatchVectors) {
    it(`vector ${v.vector}: request and response bytes, from the keys, blinds and tokens`, () => {
      const requests: TokenRequest[] = [];
      const sigs: Uint8Array[] = [];
      for (const it of v.issuance) {
        const spki = fromHex(it.pkS);
        const pub = publicKeyFromPssSpki(spki);
        const jwk = pub.export({ format: 'jwk' });
        const n = BigInt('0x' + Buffer.from(jwk.n!, 'base64url').toString('hex'));
        const e = BigInt('0x' + Buffer.from(jwk.e!, 'base64url').toString('hex'));
        const token = fromHex(it.token);
        verifyTokenSignature(token, pub);
        const t = decodeToken(token);
        assert.equal(toHex(t.tokenKeyId), toHex(tokenKeyId(spki)));
        const r = big(fromHex(it.blind));
        const blinded = bytesOf(modPow((big(t.authenticator) * r) % n, e, n), 256);
        requests.push({ tokenType: 2, truncatedTokenKeyId: truncatedKeyId(t.tokenKeyId), blindedMsg: blinded });
        const signer = new BlindSigner(createPrivateKey(Buffer.from(fromHex(it.skS)).toString('utf8')));
        assert.equal(toHex(signer.publicKey.export({ format: 'der', type: 'spki' })), toHex(pub.export({ format: 'der', type: 'spki' })));
        sigs.push(signer.sign(blinded));
      }
      assert.equal(toHex(encodeBatchTokenRequest(requests)), v.token_request);
      assert.equal(toHex(encodeBatchTokenResponse(sigs.map((blindSig) => ({ blindSig })))), v.token_response);
      const decoded = decodeBatchTokenRequestFramed(fromHex(v.token_request));
      assert.equal(decoded.framing, 'draft');
      assert.deepEqual(decoded.requests.map((r) => toHex(r.blindedMsg)), requests.map((r) => toHex(r.blindedMsg)));
      assert.deepEqual(decodeBatchTokenResponse(fromHex(v.token_response)).map((r) => toHex(r!.blindSig)), sigs.map(toHex));
    });
  }

  it('reads the pre-draft 261-byte items (0x0002 || TokenRequest) for one release, flagged as legacy', () => {
    const reqs = [0, 1, 2].map((i) => ({ tokenType: 2, truncatedTokenKeyId: 7, blindedMsg: new Uint8Array(256).fill(i + 1) }));
    const body = 3 * 261;
    const legacy = new Uint8Array(varintLength(body) + body);
    let off = writeVarint(legacy, 0, body);
    for (const r of reqs) {
      legacy.set([0, 2, 0, 2, r.truncatedTokenKeyId], off);
      legacy.set(r.blindedMsg, off + 5);
      off += 261;
    }
    const d = decodeBatchTokenRequestFramed(legacy);
    assert.equal(d.framing, 'legacy-261');
    assert.deepEqual(d.requests.map((r) => r.blindedMsg[0]), [1, 2, 3]);
    // A draft-framed batch is never read the legacy way, and vice versa.
    assert.equal(decodeBatchTokenRequestFramed(encodeBatchTokenRequest(reqs)).framing, 'draft');
    assert.equal(decodeBatchTokenRequest(encodeBatchTokenRequest(reqs)).length, 3);
  });
});

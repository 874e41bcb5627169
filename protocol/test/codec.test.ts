import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ProtocolError,
  decodeBatchTokenRequest,
  decodeBatchTokenResponse,
  decodeToken,
  decodeTokenChallenge,
  decodeTokenInput,
  decodeTokenRequest,
  decodeTokenResponse,
  encodeBatchTokenRequest,
  encodeBatchTokenResponse,
  encodeToken,
  encodeTokenChallenge,
  encodeTokenInput,
  encodeTokenRequest,
  fromBase64Url,
  toBase64UrlPadded,
  readVarint,
  writeVarint,
  varintLength,
  challengeDigest,
  defaultChallenge,
  TOKEN_LENGTH,
  TOKEN_REQUEST_LENGTH,
} from '@llmtor/protocol';

/** Runs `f`; passes if it returns or throws a ProtocolError; fails on any other throw. */
function onlyTypedErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw new Error(`expected ProtocolError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
  }
}

function expectCode(f: () => unknown, code: string): void {
  assert.throws(f, (e: unknown) => e instanceof ProtocolError && e.code === code);
}

const bytes = (n: number, v = 7) => new Uint8Array(n).fill(v);

describe('wire formats', () => {
  describe('TokenChallenge', () => {
    it('round-trips and its digest is SHA-256 of the encoding', () => {
      const c = defaultChallenge('issuer.example');
      const enc = encodeTokenChallenge(c);
      assert.deepEqual(Buffer.from(enc).toString('hex'), '0002000e6973737565722e6578616d706c65000000');
      const d = decodeTokenChallenge(enc);
      assert.equal(Buffer.from(d.issuerName).toString(), 'issuer.example');
      assert.equal(challengeDigest(c).length, 32);
      assert.deepEqual(challengeDigest(enc), challengeDigest(c));
    });
    it('rejects a redemption context that is neither empty nor 32 bytes, and trailing bytes', () => {
      const enc = encodeTokenChallenge(defaultChallenge('a'));
      const bad = Uint8Array.from(enc);
      bad[5] = 5; // redemption_context length
      expectCode(() => decodeTokenChallenge(bad), 'malformed');
      expectCode(() => decodeTokenChallenge(Uint8Array.from([...enc, 0])), 'malformed');
      expectCode(() => encodeTokenChallenge({ ...defaultChallenge('a'), redemptionContext: bytes(3) }), 'wrong_length');
    });
    it('any byte string either decodes or fails with a typed error', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => onlyTypedErrors(() => decodeTokenChallenge(b))), { numRuns: 3000 });
    });
  });

  describe('Token', () => {
    const token = { tokenType: 2, nonce: bytes(32, 1), challengeDigest: bytes(32, 2), tokenKeyId: bytes(32, 3), authenticator: bytes(256, 4) };
    it('is 354 bytes and round-trips with views into the input', () => {
      const enc = encodeToken(token);
      assert.equal(enc.length, TOKEN_LENGTH);
      const d = decodeToken(enc);
      assert.deepEqual(d.nonce, token.nonce);
      assert.deepEqual(d.authenticator, token.authenticator);
      assert.equal(d.nonce.buffer, enc.buffer, 'decoded fields are views, not copies');
    });
    it('rejects other token types and lengths with specific errors', () => {
      const enc = encodeToken(token);
      const other = Uint8Array.from(enc);
      other[1] = 1;
      expectCode(() => decodeToken(other), 'wrong_token_type');
      expectCode(() => decodeToken(enc.subarray(0, 353)), 'wrong_length');
      expectCode(() => decodeToken(Uint8Array.from([...enc, 0])), 'wrong_length');
      expectCode(() => decodeToken(new Uint8Array(1)), 'wrong_length');
      expectCode(() => encodeToken({ ...token, nonce: bytes(31) }), 'wrong_length');
    });
    it('any byte string either decodes or fails with a typed error', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => onlyTypedErrors(() => decodeToken(b))), { numRuns: 2000 });
    });
    it('its token input (98 bytes) is its prefix and decodes to the same fields', () => {
      const input = encodeTokenInput(token);
      assert.equal(input.length, 98);
      assert.deepEqual(input, encodeToken(token).subarray(0, 98));
      const d = decodeTokenInput(input);
      assert.deepEqual({ ...d }, { tokenType: 2, nonce: token.nonce, challengeDigest: token.challengeDigest, tokenKeyId: token.tokenKeyId });
      assert.equal(d.tokenKeyId.buffer, input.buffer, 'decoded fields are views, not copies');
      expectCode(() => decodeTokenInput(encodeToken(token)), 'wrong_length');
      const other = Uint8Array.from(input);
      other[1] = 3;
      expectCode(() => decodeTokenInput(other), 'wrong_token_type');
      fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), (b) => onlyTypedErrors(() => decodeTokenInput(b))), { numRuns: 500 });
    });
  });

  describe('TokenRequest / TokenResponse', () => {
    const req = { tokenType: 2, truncatedTokenKeyId: 0xab, blindedMsg: bytes(256, 9) };
    it('TokenRequest is 259 bytes and round-trips', () => {
      const enc = encodeTokenRequest(req);
      assert.equal(enc.length, TOKEN_REQUEST_LENGTH);
      assert.deepEqual(decodeTokenRequest(enc), { ...req, blindedMsg: enc.subarray(3) });
    });
    it('rejects wrong lengths and types', () => {
      expectCode(() => decodeTokenRequest(new Uint8Array(258).fill(0).map((_, i) => (i === 1 ? 2 : 0))), 'wrong_length');
      expectCode(() => decodeTokenRequest(Uint8Array.from([0, 1, ...bytes(257)])), 'wrong_token_type');
      expectCode(() => decodeTokenResponse(bytes(255)), 'wrong_length');
      expectCode(() => encodeTokenRequest({ ...req, truncatedTokenKeyId: 256 }), 'malformed');
    });
    it('any byte string either decodes or fails with a typed error', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
          onlyTypedErrors(() => decodeTokenRequest(b));
          onlyTypedErrors(() => decodeTokenResponse(b));
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe('batched requests and responses', () => {
    const reqs = [0, 1, 2].map((i) => ({ tokenType: 2, truncatedTokenKeyId: i, blindedMsg: bytes(256, i) }));
    it('round-trip, including absent responses', () => {
      const enc = encodeBatchTokenRequest(reqs);
      assert.equal(enc.length, 2 + 3 * 259); // RFC 9578 TokenRequests back to back (draft-08 §6.1)
      assert.deepEqual(decodeBatchTokenRequest(enc).map((r) => r.truncatedTokenKeyId), [0, 1, 2]);
      const resp = encodeBatchTokenResponse([{ blindSig: bytes(256, 1) }, null, { blindSig: bytes(256, 3) }]);
      const d = decodeBatchTokenResponse(resp);
      assert.equal(d[1], null);
      assert.deepEqual(d[2]!.blindSig, bytes(256, 3));
    });
    it('enforce the batch limit before parsing items', () => {
      expectCode(() => decodeBatchTokenRequest(encodeBatchTokenRequest(reqs), 2), 'wrong_length');
    });
    it('reject empty batches, bad length prefixes, foreign types and bad presence octets', () => {
      expectCode(() => decodeBatchTokenRequest(Uint8Array.of(0)), 'malformed');
      const enc = encodeBatchTokenRequest(reqs);
      expectCode(() => decodeBatchTokenRequest(enc.subarray(0, enc.length - 1)), 'wrong_length');
      const foreign = Uint8Array.from(enc);
      foreign[3] = 5; // token_type of item 0
      expectCode(() => decodeBatchTokenRequest(foreign), 'wrong_token_type');
      expectCode(() => decodeBatchTokenResponse(Uint8Array.of(1, 2)), 'malformed');
      expectCode(() => decodeBatchTokenRequest(Uint8Array.of(0x40, 0x05, 0, 0, 0, 0, 0)), 'malformed'); // non-minimal varint
    });
    it('any byte string either decodes or fails with a typed error', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
          onlyTypedErrors(() => decodeBatchTokenRequest(b));
          onlyTypedErrors(() => decodeBatchTokenResponse(b));
        }),
        { numRuns: 3000 },
      );
    });
    it('mutating one byte of a valid batch never yields anything but a decode or a typed error', () => {
      const enc = encodeBatchTokenRequest(reqs);
      fc.assert(
        fc.property(fc.nat(enc.length - 1), fc.integer({ min: 0, max: 255 }), (i, v) => {
          const m = Uint8Array.from(enc);
          m[i] = v;
          onlyTypedErrors(() => decodeBatchTokenRequest(m));
        }),
      );
    });
  });

  describe('varint and base64url', () => {
    it('varint round-trips with minimal length', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 2 ** 30 - 1 }), (v) => {
          const b = new Uint8Array(8);
          const n = writeVarint(b, 0, v);
          assert.equal(n, varintLength(v));
          assert.deepEqual(readVarint(b, 0), [v, n]);
        }),
      );
    });
    it('base64url is strict: padded or not, no standard alphabet, canonical only', () => {
      assert.deepEqual(fromBase64Url('AQID'), Uint8Array.of(1, 2, 3));
      assert.deepEqual(fromBase64Url('AQI='), Uint8Array.of(1, 2)); // RFC 9577 §2.1.2 values carry padding
      assert.deepEqual(fromBase64Url('AQ=='), Uint8Array.of(1));
      assert.deepEqual(fromBase64Url('AQ'), Uint8Array.of(1));
      assert.equal(toBase64UrlPadded(Uint8Array.of(1)), 'AQ==');
      assert.equal(toBase64UrlPadded(Uint8Array.of(1, 2, 3)), 'AQID');
      expectCode(() => fromBase64Url('AQ='), 'malformed'); // wrong amount of padding
      expectCode(() => fromBase64Url('AQID='), 'malformed');
      expectCode(() => fromBase64Url('A=Q='), 'malformed');
      expectCode(() => fromBase64Url('a+b/'), 'malformed');
      expectCode(() => fromBase64Url('AR'), 'malformed'); // non-canonical trailing bits
      expectCode(() => fromBase64Url('AR=='), 'malformed');
      fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (b) => assert.deepEqual(fromBase64Url(toBase64UrlPadded(b)), b)));
      fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => onlyTypedErrors(() => fromBase64Url(s))));
    });
  });
});

import assert from 'node:assert/strict';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { canonicalJson } from '../../src/redemption/chatRequest.js';
import { creditsNeeded, maxBodyFor } from '../../src/redemption/pricing.js';
import { TokenSecrets } from '../../src/redemption/tokenHashes.js';

describe('token-derived secrets, canonical requests and pricing', () => {
  it('derives its keys with standard HKDF-SHA-256 (same output as node:crypto hkdfSync)', () => {
    const tokens = [randomBytes(354), randomBytes(354)];
    const ikm = Buffer.concat(tokens);
    const s = new TokenSecrets(tokens);
    const bindKey = Buffer.from(hkdfSync('sha256', ikm, 'llmtor-redemption-v1', 'llmtor request-binding', 32));
    assert.equal(s.binding('x'), createHmac('sha256', bindKey).update('x').digest('hex'));
  });

  it('a cached answer opens only with the same tokens and the same request binding', () => {
    const t = [randomBytes(354)];
    const s = new TokenSecrets(t);
    const blob = s.seal(Buffer.from('the answer'), 'b1');
    assert.equal(new TokenSecrets(t).open(blob, 'b1')?.toString(), 'the answer');
    assert.equal(new TokenSecrets(t).open(blob, 'b2'), undefined);
    assert.equal(new TokenSecrets([randomBytes(354)]).open(blob, 'b1'), undefined);
    const tampered = Buffer.from(blob);
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    assert.equal(s.open(tampered, 'b1'), undefined);
    assert.ok(!blob.includes(Buffer.from('the answer')));
  });

  it('the request binding does not depend on key order', () => {
    assert.equal(canonicalJson({ b: 1, a: [{ y: 2, x: null }] }), canonicalJson({ a: [{ x: null, y: 2 }], b: 1 }));
    assert.notEqual(canonicalJson({ a: 1 }), canonicalJson({ a: '1' }));
  });

  it('prices k = price × ceil(bytes / allowance) and bounds the body by the tokens presented', () => {
    const m = { priceCredits: 2, bytesPerCredit: 1000 };
    assert.equal(creditsNeeded(m, 1), 2);
    assert.equal(creditsNeeded(m, 1000), 2);
    assert.equal(creditsNeeded(m, 1001), 4);
    assert.equal(maxBodyFor([m, { priceCredits: 1, bytesPerCredit: 500 }], 0, 1e9), 1000);
    assert.equal(maxBodyFor([m, { priceCredits: 1, bytesPerCredit: 500 }], 4, 1e9), 2000);
    assert.equal(maxBodyFor([m], 400, 4096), 4096);
  });
});

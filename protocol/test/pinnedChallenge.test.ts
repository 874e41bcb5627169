import assert from 'node:assert/strict';
import { challengeDeviation, decodeTokenChallenge, directoryBoundViolation, encodeTokenChallenge, MAX_KEYS_PER_PURPOSE, parseIssuerDirectory, pinnedChallenge, type IssuerDirectory } from '../src/index.js';

describe('pinned TokenChallenge', () => {
  it('is type 0x0002, the issuer name, no redemption context, no origin', () => {
    const c = decodeTokenChallenge(encodeTokenChallenge(pinnedChallenge('llmtor.example')));
    assert.equal(c.tokenType, 2);
    assert.equal(new TextDecoder().decode(c.issuerName), 'llmtor.example');
    assert.equal(c.redemptionContext.length, 0);
    assert.equal(c.originInfo.length, 0);
    assert.throws(() => pinnedChallenge('two words'), /issuer name/);
  });

  it('names every way an offered challenge deviates', () => {
    const enc = (ctx: number, origin: string, name = 'llmtor.example', type = 2) =>
      encodeTokenChallenge({ tokenType: type, issuerName: new TextEncoder().encode(name), redemptionContext: new Uint8Array(ctx).fill(7), originInfo: new TextEncoder().encode(origin) });
    assert.equal(challengeDeviation(enc(0, ''), 'llmtor.example'), undefined);
    assert.match(challengeDeviation(enc(32, ''), 'llmtor.example')!, /redemption context/);
    assert.match(challengeDeviation(enc(0, 'a.example'), 'llmtor.example')!, /origin info/);
    assert.match(challengeDeviation(enc(0, '', 'other'), 'llmtor.example')!, /issuer name "other"/);
    assert.match(challengeDeviation(enc(0, '', 'llmtor.example', 1), 'llmtor.example')!, /token type 0x0001/);
    assert.match(challengeDeviation(new Uint8Array([0, 2, 0]), 'llmtor.example')!, /not a valid TokenChallenge/);
  });
});

describe('directory issuer-name and key bound', () => {
  const key = (purpose: 'credit' | 'permanent' | 'transient') => ({ 'token-type': 2, 'token-key': 'AAEC', purpose });
  it('parses issuer-name and refuses a malformed one', () => {
    assert.equal(parseIssuerDirectory({ 'issuer-request-uri': '/t', 'token-keys': [], 'issuer-name': 'llmtor.local' })['issuer-name'], 'llmtor.local');
    assert.throws(() => parseIssuerDirectory({ 'issuer-request-uri': '/t', 'token-keys': [], 'issuer-name': 'a,b' }), /issuer-name/);
  });
  it('allows MAX_KEYS_PER_PURPOSE keys per purpose and not one more', () => {
    for (const p of ['credit', 'permanent', 'transient'] as const) {
      const dir: IssuerDirectory = { 'issuer-request-uri': '/t', 'token-keys': Array.from({ length: MAX_KEYS_PER_PURPOSE }, () => key(p)) };
      assert.equal(directoryBoundViolation(dir), undefined);
      dir['token-keys'].push(key(p));
      assert.match(directoryBoundViolation(dir)!, new RegExp(`${MAX_KEYS_PER_PURPOSE + 1} ${p} keys`));
    }
  });
});

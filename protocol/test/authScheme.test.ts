import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError, formatAuthorization, formatWwwAuthenticate, parseAuthorization, parseWwwAuthenticate } from '@llmtor/protocol';

describe('PrivateToken HTTP authentication scheme', () => {
  const t1 = new Uint8Array(354).fill(1);
  const t2 = new Uint8Array(354).fill(2);
  it('carries k tokens as k comma-separated credentials', () => {
    const h = formatAuthorization([t1, t2]);
    assert.match(h, /^PrivateToken token="[A-Za-z0-9_-]+=*", PrivateToken token="[A-Za-z0-9_-]+=*"$/);
    assert.deepEqual(parseAuthorization(h), [t1, t2]);
  });
  it('accepts quoted values and any case of the scheme name, ignores other schemes', () => {
    const b = Buffer.from(t1).toString('base64url');
    assert.deepEqual(parseAuthorization(`privatetoken token="${b}"`), [t1]);
    assert.deepEqual(parseAuthorization(`Bearer abc, PrivateToken token=${b}`), [t1]);
    assert.deepEqual(parseAuthorization(undefined), []);
    assert.deepEqual(parseAuthorization('Bearer abc'), []);
  });
  it('rejects bad base64url and too many tokens with typed errors', () => {
    assert.throws(() => parseAuthorization('PrivateToken token=a+b/'), (e: unknown) => e instanceof ProtocolError);
    assert.throws(() => parseAuthorization(formatAuthorization([t1, t1, t1]), 2), /at most 2 tokens/);
  });
  it('never throws anything but a ProtocolError on arbitrary header text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (s) => {
        try {
          parseAuthorization(s);
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
        }
        try {
          parseWwwAuthenticate(s);
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
        }
      }),
      { numRuns: 3000 },
    );
  });
  it('WWW-Authenticate round-trips challenge, token-key and max-age', () => {
    const h = formatWwwAuthenticate({ challenge: Uint8Array.of(0, 2, 0, 1, 97, 0, 0, 0), tokenKey: Uint8Array.of(9, 9), maxAge: 60 });
    assert.deepEqual(parseWwwAuthenticate(h), { challenge: Uint8Array.of(0, 2, 0, 1, 97, 0, 0, 0), tokenKey: Uint8Array.of(9, 9), maxAge: 60 });
  });
  it('writes challenge and token-key with base64url padding (RFC 9577 §2.1.2) and reads both spellings', () => {
    const challenge = Uint8Array.of(0, 2, 0, 12, ...Buffer.from('proxy.llmtor'), 0, 0, 0); // 19 bytes: needs "=="
    const tokenKey = Uint8Array.of(1, 2, 3, 4);
    const h = formatWwwAuthenticate({ challenge, tokenKey });
    assert.match(h, /challenge="[A-Za-z0-9_-]+==", /);
    assert.equal(h, `PrivateToken challenge="${Buffer.from(challenge).toString('base64')}", token-key="AQIDBA=="`.replace(/\+/g, '-').replace(/\//g, '_'));
    assert.deepEqual(parseWwwAuthenticate(h).challenge, challenge);
    assert.deepEqual(parseWwwAuthenticate(h.replace(/=+(",|"$)/g, '$1')).challenge, challenge);
    const short = Uint8Array.of(7, 7, 7, 7); // 4 bytes: "BwcHBw=="
    assert.deepEqual(parseAuthorization('PrivateToken token="BwcHBw=="'), [short]);
    assert.deepEqual(parseAuthorization('PrivateToken token=BwcHBw'), [short]);
  });
});

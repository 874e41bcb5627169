import assert from 'node:assert/strict';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { ProtocolError, formatAuthorization, formatWwwAuthenticate, fromHex, parseAuthItems, parseAuthParamList, parseAuthorization, parseAuthorizationForm, parseWwwAuthenticate, toHex } from '@llmtor/protocol';

const rfc9577 = JSON.parse(readFileSync(new URL('../../test/vectors/rfc9577-header-vectors.json', import.meta.url), 'utf8')) as { www_authenticate: string[]; challenge_0: string };

describe('PrivateToken HTTP authentication scheme', () => {
  const t1 = new Uint8Array(354).fill(1);
  const t2 = new Uint8Array(354).fill(2);
  it('carries k tokens in one credential: token plus additional-tokens', () => {
    const h = formatAuthorization([t1, t2]);
    assert.match(h, /^PrivateToken token="[A-Za-z0-9_-]+=*", additional-tokens="[A-Za-z0-9_-]+=*"$/);
    assert.deepEqual(parseAuthorizationForm(h), { tokens: [t1, t2], form: 'single-credential' });
    assert.equal(parseAuthItems(h).length, 1, 'one credential (RFC 9110 §11.6.2)');
    assert.match(formatAuthorization([t1]), /^PrivateToken token="[A-Za-z0-9_-]+=*"$/);
    const three = formatAuthorization([t1, t2, t1]);
    assert.deepEqual(parseAuthorization(three), [t1, t2, t1]);
  });
  it('still reads the deprecated k-credential form for one release, and refuses a mix of both', () => {
    const b1 = Buffer.from(t1).toString('base64url');
    const b2 = Buffer.from(t2).toString('base64url');
    assert.deepEqual(parseAuthorizationForm(`PrivateToken token=${b1}, PrivateToken token=${b2}`), { tokens: [t1, t2], form: 'legacy-multiple-credentials' });
    assert.throws(() => parseAuthorization(`PrivateToken token=${b1}, additional-tokens="${b2}", PrivateToken token=${b2}`), /not several credentials/);
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
  it('a challenge may leave token-key to the directory (RFC 9577 §2.1.2)', () => {
    const h = formatWwwAuthenticate({ challenge: Uint8Array.of(0, 2, 0, 1, 97, 0, 0, 0) });
    assert.equal(h, 'PrivateToken challenge="AAIAAWEAAAA="');
    assert.deepEqual(parseWwwAuthenticate(h), { challenge: Uint8Array.of(0, 2, 0, 1, 97, 0, 0, 0) });
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

  describe('one RFC 9110 auth-param parser for both headers', () => {
    const b = Buffer.from(t1).toString('base64url');
    it('ignores unknown parameters, also with digits in the name (RFC 9577 §2.2.2)', () => {
      assert.deepEqual(parseAuthorization(`PrivateToken token=${b}, ext1=abc`), [t1]);
      assert.deepEqual(parseAuthorization(`PrivateToken ext1=abc, token="${b}", x-2="y"`), [t1]);
    });
    it('keeps commas inside quoted-strings', () => {
      assert.deepEqual(parseAuthorization(`PrivateToken token=${b}, realm="a,b"`), [t1]);
      assert.deepEqual(parseAuthorization(`Other realm="x, PrivateToken token=${b}", PrivateToken token=${b}`), [t1]);
      const items = parseAuthItems('Basic realm="a,b", PrivateToken challenge="AAIA", token-key="AQ==", realm="c\\"d,e"');
      assert.deepEqual(items.map((i) => i.scheme), ['Basic', 'PrivateToken']);
      assert.equal(items[1]!.params.get('realm'), 'c"d,e');
    });
    it('reads token68 credentials of other schemes and case-insensitive names', () => {
      const items = parseAuthItems(`Bearer abc.def==, PRIVATETOKEN TOKEN=${b}`);
      assert.equal(items[0]!.token68, 'abc.def==');
      assert.deepEqual(parseAuthorization(`Bearer abc.def==, PRIVATETOKEN TOKEN=${b}`), [t1]);
      assert.deepEqual(parseAuthItems('Negotiate, Basic'), [{ scheme: 'Negotiate', params: new Map() }, { scheme: 'Basic', params: new Map() }]);
    });
    it('rejects a parameter given twice, a missing value and stray characters', () => {
      for (const bad of [`PrivateToken token=${b}, token=${b}`, 'PrivateToken token=', 'PrivateToken token="abc', `PrivateToken token=${b} x`, 'PrivateToken =x']) {
        assert.throws(() => parseAuthorization(bad), (e: unknown) => e instanceof ProtocolError, bad);
      }
    });
    it('reads the RFC 9577 Appendix A.2 header vectors (unknown attribute, quoted max-age, Basic and grease challenges)', () => {
      for (const h of rfc9577.www_authenticate.slice(0, 2)) {
        const c = parseWwwAuthenticate(h);
        assert.equal(c.maxAge, 10);
        assert.equal(c.challenge[1], 2);
      }
      // The third offers only grease (0x0000) and VOPRF (0x0001): nothing for us.
      assert.throws(() => parseWwwAuthenticate(rfc9577.www_authenticate[2]!), /no PrivateToken challenge for token type 0x0002/);
      assert.equal(toHex(parseWwwAuthenticate(rfc9577.www_authenticate[0]!).challenge), rfc9577.challenge_0);
      assert.deepEqual(fromHex(rfc9577.challenge_0).subarray(0, 2), Uint8Array.of(0, 2));
      const last = parseAuthItems(rfc9577.www_authenticate[2]!);
      assert.deepEqual(last.map((i) => i.scheme), ['Basic', 'PrivateToken', 'PrivateToken']);
      assert.equal(last[2]!.params.get('unknownchallengeattribute'), 'ignore-me');
    });
    it('parses a bare auth-param list (LLMTor-Abuse)', () => {
      assert.deepEqual([...parseAuthParamList('permanent=abc, transient="d=="')], [['permanent', 'abc'], ['transient', 'd==']]);
      assert.throws(() => parseAuthParamList('permanent=a, permanent=b'), ProtocolError);
    });
    it('takes exactly the tchar (RFC 9110 §5.6.2) and token68 (§11.2) characters, for every UTF-16 code unit', () => {
      // The scanner uses lookup tables by char code; these are the grammar's own classes.
      const tchar = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
      const token68 = /^[A-Za-z0-9\-._~+/]$/;
      for (let c = 0; c < 0x10000; c++) {
        const ch = String.fromCharCode(c);
        let value: string | undefined;
        try {
          value = parseAuthParamList(`p=a${ch}b`).get('p');
        } catch {
          value = undefined;
        }
        assert.equal(value === `a${ch}b`, tchar.test(ch), `tchar ${c.toString(16)}`);
        let t68: string | undefined;
        try {
          t68 = parseAuthItems(`X a${ch}b`)[0]?.token68;
        } catch {
          t68 = undefined;
        }
        assert.equal(t68 === `a${ch}b`, token68.test(ch), `token68 ${c.toString(16)}`);
      }
    });
  });
});

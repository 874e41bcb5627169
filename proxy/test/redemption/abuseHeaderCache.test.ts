/** The LLMTor-Abuse header cache: a header seen before skips parsing, never the key checks. */
import assert from 'node:assert/strict';
import { Keyring, keyEntry } from '@llmtor/protocol';
import { AbuseTokenCache, ChallengeContext, parseAbuseHeader, verifyAbuseTokens } from '../../src/redemption/credentials.js';
import { RedemptionError } from '../../src/redemption/errors.js';
import { Mint } from './support/tokens.js';

describe('abuse header cache', () => {
  let mint: Mint;
  let header: string;
  let ch: ChallengeContext;
  before(async () => {
    mint = await Mint.create();
    header = await mint.abuseHeader();
    ch = new ChallengeContext(mint.issuer);
  });

  it('answers a repeated header from the cache with the same pseudonym as a full verification', () => {
    const cache = new AbuseTokenCache();
    const kr = mint.keyring();
    const now = Date.now();
    const first = cache.parseHeader(header)!;
    assert.ok(first.tokens && !first.known);
    const p1 = cache.verifyHeader(first, kr, now, ch.digest);
    const second = cache.parseHeader(header)!;
    assert.ok(second.known, 'recognised the second time');
    assert.deepStrictEqual(cache.verifyHeader(second, kr, now, ch.digest), p1);
    assert.deepStrictEqual(p1, verifyAbuseTokens(parseAbuseHeader(header)!, kr, now, ch.digest));
  });

  it('still rejects a known header once its key is no longer redeemable', () => {
    const cache = new AbuseTokenCache();
    const now = Date.now();
    cache.verifyHeader(cache.parseHeader(header)!, mint.keyring(), now, ch.digest);
    const withoutTransient = new Keyring([...mint.keys.values()].filter((k) => k.purpose !== 'transient').map((k) => keyEntry(k.meta)));
    const h = cache.parseHeader(header)!;
    assert.ok(h.known);
    assert.throws(() => cache.verifyHeader(h, withoutTransient, now, ch.digest), (e) => e instanceof RedemptionError && e.status === 401 && e.extra.reason === 'unknown_key_id');
    // And after the key's redemption window.
    assert.throws(() => cache.verifyHeader(cache.parseHeader(header)!, mint.keyring(), now + 365 * 86_400_000, ch.digest), (e) => e instanceof RedemptionError && e.status === 401);
  });

  it('malformed headers fail exactly like parseAbuseHeader, and are never remembered', () => {
    const cache = new AbuseTokenCache();
    for (const bad of ['permanent=abc', 'transient=x, transient=y', 'nonsense', `permanent=${'A'.repeat(3000)}`]) {
      let expected: unknown;
      try {
        parseAbuseHeader(bad);
      } catch (e) {
        expected = e;
      }
      assert.ok(expected instanceof RedemptionError);
      assert.throws(() => cache.parseHeader(bad), (e) => e instanceof RedemptionError && e.code === expected.code && e.message === expected.message);
    }
    assert.equal(cache.parseHeader(undefined), undefined);
    assert.equal(cache.parseHeader('  '), undefined);
  });

  it('reads LLMTor-Abuse with the RFC 9110 auth-param parser: quoted values, any order, unknown parameters ignored', () => {
    const plain = parseAbuseHeader(header)!;
    const [p, t] = header.split(', ').map((x) => x.slice(x.indexOf('=') + 1));
    for (const form of [`transient="${t}", permanent=${p}`, `permanent="${p}",transient=${t}, v2="a,b"`, `PERMANENT=${p}, Transient=${t}`]) {
      assert.deepStrictEqual(parseAbuseHeader(form), plain, form);
    }
  });
});

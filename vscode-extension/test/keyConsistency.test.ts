import assert from 'node:assert/strict';
import { fromBase64Url, MAX_KEYS_PER_PURPOSE, toBase64Url, tokenKeyId, type DirectoryKey, type IssuerDirectory } from '@llmtor/protocol';
import { checkKeyConsistency, emptyPins, issuingKeyFromPins, KeyConsistencyError, pinDirectory } from '../src/core/keyConsistency.js';

const publicDir: IssuerDirectory = {
  'issuer-request-uri': '/token-request',
  'token-keys': [
    { 'token-type': 2, 'token-key': 'AAEC', purpose: 'credit' },
    { 'token-type': 2, 'token-key': 'AwQF', purpose: 'transient', epoch: '2026-11' },
  ],
};

describe('key consistency', () => {
  it('accepts a key that the directory fetched over Tor shows with the same purpose', () => {
    checkKeyConsistency({ tokenKey: 'AAEC', purpose: 'credit' }, publicDir);
    checkKeyConsistency({ tokenKey: 'AwQF', purpose: 'transient', epoch: '2026-11' }, publicDir);
  });

  it('refuses a key that only this client was shown', () => {
    assert.throws(() => checkKeyConsistency({ tokenKey: 'BgcI', purpose: 'credit' }, publicDir), KeyConsistencyError);
  });

  it('refuses a known key offered for another purpose or epoch', () => {
    assert.throws(() => checkKeyConsistency({ tokenKey: 'AAEC', purpose: 'permanent' }, publicDir), /lists as "credit"/);
    assert.throws(() => checkKeyConsistency({ tokenKey: 'AwQF', purpose: 'transient', epoch: '2026-12' }, publicDir), /epoch/);
  });
});

describe('pinned directory (pinDirectory)', () => {
  const now = Date.UTC(2026, 11, 1, 12);
  const s = Math.floor(now / 1000);
  // Stand-in key bytes: pinDirectory hashes them (token_key_id); it never parses them.
  const fake = (i: number) => toBase64Url(new Uint8Array([0x30, 0x82, i & 0xff, (i >> 8) & 0xff]));
  const k = (i: number, purpose: 'credit' | 'permanent' | 'transient' = 'credit', nb = s - 3600): DirectoryKey => ({
    'token-type': 2,
    'token-key': fake(i),
    purpose,
    'not-before': nb,
    'issuance-not-after': s + 30 * 86400,
    'redemption-not-after': s + 60 * 86400,
    ...(purpose === 'transient' ? { epoch: '2026-12' } : {}),
  });
  const dir = (...keys: DirectoryKey[]): IssuerDirectory => ({ 'issuer-request-uri': '/token-request', 'issuer-name': 'llmtor.test', 'token-keys': keys });

  it('pins a sound directory and issues only under its one current key', () => {
    const pins = pinDirectory(emptyPins(), dir(k(1), k(2, 'credit', s - 7200), k(3, 'permanent')), now);
    assert.equal(pins.issuerName, 'llmtor.test');
    assert.equal(issuingKeyFromPins(pins, 'credit', now, 3_600_000).key.tokenKey, fake(1), 'the newest issuing key');
    assert.throws(() => issuingKeyFromPins(pins, 'credit', now + 3_600_001, 3_600_000), /older than/);
    assert.throws(() => issuingKeyFromPins(emptyPins(), 'credit', now, 3_600_000), /No issuer directory/);
  });

  it('refuses more keys per purpose than the documented bound', () => {
    assert.throws(() => pinDirectory(emptyPins(), dir(...Array.from({ length: MAX_KEYS_PER_PURPOSE + 1 }, (_, i) => k(i + 1, 'credit', s - (i + 1) * 100))), now), new RegExp(`${MAX_KEYS_PER_PURPOSE + 1} credit keys; at most ${MAX_KEYS_PER_PURPOSE}`));
  });

  it('refuses two current keys for one purpose', () => {
    assert.throws(() => pinDirectory(emptyPins(), dir(k(1), k(2)), now), /more than one current credit key/);
  });

  it('alarms when a pinned key vanishes before its end, changes its metadata, or a new key takes a pinned truncated id', () => {
    const pins = pinDirectory(emptyPins(), dir(k(1)), now);
    assert.throws(() => pinDirectory(pins, dir(k(2)), now + 1000), /is gone although it is valid/);
    assert.throws(() => pinDirectory(pins, dir({ ...k(1), 'redemption-not-after': s + 1 }), now + 1000), /changed its redemptionNotAfterSec/);
    const last = tokenKeyId(fromBase64Url(fake(1), 'k')).at(-1);
    let j = 2;
    while (tokenKeyId(fromBase64Url(fake(j), 'k')).at(-1) !== last) j++;
    assert.throws(() => pinDirectory(pins, dir(k(1), k(j, 'credit', s - 9000)), now + 1000), /different public key now answers to truncated key id/);
    // After the key's redemption window, it may go.
    pinDirectory(pins, dir(k(2)), (s + 60 * 86400) * 1000);
  });

  it('alarms when the issuer name changes, and compares with a mirror', () => {
    const pins = pinDirectory(emptyPins(), dir(k(1)), now);
    assert.throws(() => pinDirectory(pins, { ...dir(k(1)), 'issuer-name': 'other' }, now), /issuer name changed/);
    assert.throws(() => pinDirectory(emptyPins(), dir(k(1)), now, { mirror: dir(k(2)) }), /mirror/);
    pinDirectory(emptyPins(), dir(k(1)), now, { mirror: dir(k(1)) });
  });
});

import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import {
  Keyring,
  LocalKeyEncryptionKey,
  azureKekFingerprint,
  ProtocolError,
  epochBounds,
  epochOf,
  keyEntry,
  keyMetadata,
  openSigningKeyFile,
  parseIssuerDirectory,
  parseSigningKeyFile,
  rewrapSigningKey,
  sealSigningKey,
  toHex,
  tokenKeyId,
  type SigningKeyFile,
} from '@llmtor/protocol';
import { testKey } from './support.js';

const T0 = Date.parse('2026-11-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const H = 3600_000;

const isCode = (code: string) => (e: unknown) => e instanceof ProtocolError && e.code === code;

describe('issuer directory', () => {
  it('parses the standard fields and our extra fields, ignoring unknown fields and unknown token types', () => {
    const doc = {
      'issuer-request-uri': 'https://issuer.example/token-request',
      'token-keys': [
        { 'token-type': 2, 'token-key': 'AQID', 'not-before': 1700000000, purpose: 'credit', 'issuance-not-after': 1, 'redemption-not-after': 2, shiny: true },
        { 'token-type': 5, 'token-key': '!!not-base64!!' },
      ],
      'future-field': { anything: 1 },
    };
    const d = parseIssuerDirectory(JSON.stringify(doc));
    assert.equal(d['token-keys'].length, 1);
    assert.equal(d['token-keys'][0]!.purpose, 'credit');
    assert.equal((d['token-keys'][0] as unknown as Record<string, unknown>).shiny, undefined);
  });
  it('rejects documents that break the standard fields, with a message naming the field', () => {
    assert.throws(() => parseIssuerDirectory('{'), isCode('malformed'));
    assert.throws(() => parseIssuerDirectory({ 'token-keys': [] }), /issuer-request-uri/);
    assert.throws(() => parseIssuerDirectory({ 'issuer-request-uri': 'x', 'token-keys': [{ 'token-type': 2, 'token-key': 'a+b/' }] }), /token-key/);
    assert.throws(() => parseIssuerDirectory({ 'issuer-request-uri': 'x', 'token-keys': [{ 'token-type': 2, 'token-key': 'AQID', purpose: 'gold' }] }), /purpose/);
  });
  it('never throws anything but a ProtocolError on arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          parseIssuerDirectory(v);
        } catch (e) {
          assert.ok(e instanceof ProtocolError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('keyring windows', () => {
  const meta = (i: number, purpose: 'credit' | 'transient', nb: number, ie: number, re: number) =>
    keyMetadata(testKey(i), { purpose, ...(purpose === 'transient' ? { epoch: epochOf(new Date(nb)) } : {}), notBefore: iso(nb), issuanceEnd: iso(ie), redemptionEnd: iso(re) });
  it('publishes a key before it signs, signs inside the issuance window, redeems until the redemption end', () => {
    const m = meta(0, 'credit', T0, T0 + 24 * H, T0 + 48 * H);
    const ring = new Keyring([keyEntry(m)]);
    const e = ring.all()[0]!;
    assert.equal(ring.directory('u', T0 - H)['token-keys'].length, 1, 'published ahead of not-before');
    assert.equal(ring.issuing(e.truncatedId, T0 - H), undefined);
    assert.ok(ring.issuing(e.truncatedId, T0 + H, 'credit'));
    assert.equal(ring.issuing(e.truncatedId, T0 + H, 'transient'), undefined);
    assert.equal(ring.issuing(e.truncatedId, T0 + 30 * H), undefined, 'no signing after issuance end');
    assert.ok(ring.issuing(e.truncatedId, T0 + 24 * H + 60_000, 'credit', 120_000), 'a short grace after issuance end (in-flight requests, clock skew)');
    assert.equal(ring.issuing(e.truncatedId, T0 + 24 * H + 130_000, 'credit', 120_000), undefined, 'but not beyond it');
    assert.equal(ring.issuing(e.truncatedId, T0 + 48 * H, 'credit', 48 * H), undefined, 'and never past the redemption end');
    assert.ok(ring.redeeming(e.keyId, T0 + 30 * H), 'grace period');
    assert.equal(ring.redeeming(e.keyId, T0 + 48 * H), undefined, 'rejected at redemption end');
    assert.equal(ring.directory('u', T0 + 48 * H)['token-keys'].length, 0);
  });
  it('chooses the newest issuing key of a purpose and reports truncated-id collisions', () => {
    const a = keyEntry(meta(0, 'credit', T0, T0 + 24 * H, T0 + 48 * H));
    const b = keyEntry(meta(1, 'credit', T0 + 12 * H, T0 + 36 * H, T0 + 60 * H));
    const ring = new Keyring([a, b]);
    assert.equal(ring.currentIssuing('credit', T0 + 13 * H)!.meta.keyId, b.meta.keyId);
    assert.equal(ring.currentIssuing('credit', T0 + H)!.meta.keyId, a.meta.keyId);
    const clash = { ...b, truncatedId: a.truncatedId };
    assert.deepEqual(new Keyring([a, clash]).truncatedCollisions(T0), [a.truncatedId]);
    assert.deepEqual(new Keyring([a, b]).truncatedCollisions(T0), a.truncatedId === b.truncatedId ? [a.truncatedId] : []);
  });
  it('monthly epochs are calendar months in UTC', () => {
    assert.equal(epochOf(new Date('2026-12-31T23:59:59Z')), '2026-12');
    assert.equal(epochOf(new Date('2027-01-01T00:00:00Z')), '2027-01');
    assert.deepEqual(epochBounds('2026-12'), { start: new Date('2026-12-01T00:00:00Z'), end: new Date('2027-01-01T00:00:00Z') });
  });
});

describe('signing-key files', () => {
  const base = { purpose: 'credit' as const, notBefore: iso(T0), issuanceEnd: iso(T0 + H), redemptionEnd: iso(T0 + 2 * H) };
  const kekPair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kek = new LocalKeyEncryptionKey('local-kek', kekPair.privateKey);
  it('a plain file round-trips and its key id is SHA-256 of the PSS SPKI', async () => {
    const f = parseSigningKeyFile(JSON.stringify(await sealSigningKey(testKey(), base)));
    assert.equal(f.keyId, toHex(tokenKeyId(testKey())));
    const k = await openSigningKeyFile(f);
    assert.equal(k.export({ format: 'jwk' }).d, testKey().export({ format: 'jwk' }).d);
  });
  it('an envelope file holds no plaintext key and opens only with its key-encryption key', async () => {
    const f = await sealSigningKey(testKey(), base, kek);
    const text = JSON.stringify(f);
    const pkcs8 = testKey().export({ type: 'pkcs8', format: 'der' }).toString('base64url');
    assert.ok(!text.includes(pkcs8.slice(40, 80)));
    const k = await openSigningKeyFile(parseSigningKeyFile(text), kek);
    assert.equal(toHex(tokenKeyId(k)), f.keyId);
    const other = new LocalKeyEncryptionKey('local-kek', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    await assert.rejects(openSigningKeyFile(f, other), isCode('decryption_failure'));
    await assert.rejects(openSigningKeyFile(f), isCode('decryption_failure'));
  });
  it('a ciphertext moved onto another key id, or tampered, does not open', async () => {
    const a = await sealSigningKey(testKey(0), base, kek);
    const b = await sealSigningKey(testKey(1), base, kek);
    const swapped: SigningKeyFile = { ...b, privateKey: a.privateKey };
    await assert.rejects(openSigningKeyFile(swapped, kek), isCode('decryption_failure'));
    const pk = a.privateKey as Extract<SigningKeyFile['privateKey'], { type: 'envelope' }>;
    const flipped = pk.ciphertext.startsWith('A') ? 'B' + pk.ciphertext.slice(1) : 'A' + pk.ciphertext.slice(1);
    await assert.rejects(openSigningKeyFile({ ...a, privateKey: { ...pk, ciphertext: flipped } }, kek), isCode('decryption_failure'));
  });
  it('re-wrapping under a new key-encryption key keeps the signing key', async () => {
    const f = await sealSigningKey(testKey(), base, kek);
    const kek2 = new LocalKeyEncryptionKey('kek-v2', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    const g = await rewrapSigningKey(f, kek, kek2);
    assert.equal(g.privateKey.type === 'envelope' && g.privateKey.kek.keyId, 'kek-v2');
    assert.equal(toHex(tokenKeyId(await openSigningKeyFile(g, kek2))), f.keyId);
  });
  it('names its local key-encryption key by the SHA-256 of its public key, and a same-named other key is refused by fingerprint', async () => {
    const f = await sealSigningKey(testKey(), base, kek);
    const pk = f.privateKey as Extract<SigningKeyFile['privateKey'], { type: 'envelope' }>;
    const spki = kekPair.publicKey.export({ type: 'spki', format: 'der' });
    assert.equal(pk.kek.fingerprint, `sha256:${createHash('sha256').update(spki).digest('hex')}`);
    assert.equal(parseSigningKeyFile(JSON.stringify(f)).privateKey.type === 'envelope' && (parseSigningKeyFile(JSON.stringify(f)).privateKey as typeof pk).kek.fingerprint, pk.kek.fingerprint);
    const other = new LocalKeyEncryptionKey('local-kek', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    await assert.rejects(openSigningKeyFile(f, other), (e: Error) => isCode('decryption_failure')(e) && e.message.includes(pk.kek.fingerprint!) && e.message.includes(other.fingerprint));
    assert.throws(() => parseSigningKeyFile({ ...f, privateKey: { ...pk, kek: { ...pk.kek, fingerprint: 'md5:00' } } }), /fingerprint must be sha256:<64 hex>/);
  });
  it('a key file written before fingerprints (kek without one) still parses and opens', async () => {
    const f = await sealSigningKey(testKey(), base, kek);
    const pk = f.privateKey as Extract<SigningKeyFile['privateKey'], { type: 'envelope' }>;
    const old = JSON.parse(JSON.stringify({ ...f, privateKey: { ...pk, kek: { provider: 'local', keyId: 'local-kek' } } })) as unknown;
    const parsed = parseSigningKeyFile(old);
    assert.equal((parsed.privateKey as typeof pk).kek.fingerprint, undefined);
    assert.equal(toHex(tokenKeyId(await openSigningKeyFile(parsed, kek))), f.keyId);
  });
  it('a Key Vault fingerprint is <name>/<version> and must match the key URL', () => {
    assert.equal(azureKekFingerprint('https://v.vault.azure.net/keys/llmtor-kek/0123456789abcdef0123456789abcdef'), 'llmtor-kek/0123456789abcdef0123456789abcdef');
    assert.equal(azureKekFingerprint('https://v.vault.azure.net/keys/llmtor-kek'), undefined);
  });
  it('rejects inconsistent files with a message naming the field', async () => {
    const f = await sealSigningKey(testKey(), base);
    assert.throws(() => parseSigningKeyFile({ ...f, keyId: toHex(tokenKeyId(testKey(1))) }), /keyId is not SHA-256/);
    assert.throws(() => parseSigningKeyFile({ ...f, purpose: 'transient' }), /needs an epoch/);
    assert.throws(() => parseSigningKeyFile({ ...f, issuanceEnd: iso(T0 + 3 * H) }), /issuanceEnd is after redemptionEnd/);
    assert.throws(() => parseSigningKeyFile({ ...f, version: 2 }), /unsupported version/);
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          parseSigningKeyFile(v);
        } catch (e) {
          assert.ok(e instanceof ProtocolError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

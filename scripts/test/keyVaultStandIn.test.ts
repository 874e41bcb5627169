import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { CryptographyClient, KeyClient, type KeyVaultKey } from '@azure/keyvault-keys';
import { startKeyVaultStandIn, KEY_VAULT_SCOPE, type KeyVaultStandIn } from '../src/keyVaultStandIn.js';

/** What the SDK throws (RestError) or a network error, as far as these tests look at it. */
type RestErr = { statusCode?: number; code?: string; message?: string; name?: string };
type KvJson = { error?: { code: string; message: string } } | undefined;

/** Raw HTTPS call to the stand-in (for status / header checks the SDK hides). */
function raw(
  kv: KeyVaultStandIn,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; json: KvJson }> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request(
      `${kv.vaultUrl}${path}`,
      {
        method,
        ca: kv.caPem,
        agent: false,
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(payload ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json: text ? (JSON.parse(text) as KvJson) : undefined }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function token(kv: KeyVaultStandIn): Promise<string> {
  const t = await kv.credential.getToken(KEY_VAULT_SCOPE, { tenantId: kv.tenantId });
  assert.ok(t);
  return t.token;
}

const API = 'api-version=2025-07-01';

describe('Key Vault stand-in driven by @azure/keyvault-keys', function () {
  this.timeout(30_000);
  let kv: KeyVaultStandIn;
  let keys: KeyClient;

  before(async () => {
    kv = await startKeyVaultStandIn();
    keys = new KeyClient(kv.vaultUrl, kv.credential, kv.clientOptions());
  });
  after(async () => {
    await kv?.close();
  });

  it('answers an unauthenticated request with the Key Vault bearer challenge', async () => {
    const r = await raw(kv, 'GET', `/keys/nope?${API}`);
    assert.equal(r.status, 401);
    assert.equal(
      r.headers['www-authenticate'],
      `Bearer authorization="https://login.microsoftonline.com/${kv.tenantId}", resource="https://vault.azure.net"`,
    );
    assert.equal(r.json?.error?.code, 'Unauthorized');
    const forged = await raw(kv, 'GET', `/keys/nope?${API}`, { token: 'not-a-token' });
    assert.equal(forged.status, 401);
    assert.ok(forged.headers['www-authenticate']);
  });

  it('is real HTTPS: a client that does not trust the test CA is refused', async () => {
    const untrusting = new KeyClient(kv.vaultUrl, kv.credential, {
      disableChallengeResourceVerification: true,
      retryOptions: { maxRetries: 0 },
    });
    await assert.rejects(untrusting.getKey('kek'), (e: RestErr) =>
      /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/.test(`${e.code}`),
    );
  });

  it('creates an RSA key (challenge, then token for the vault scope and tenant)', async () => {
    kv.resetStats();
    const callsBefore = kv.credential.calls.length;
    const key = await keys.createRsaKey('kek', { keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'], tags: { purpose: 'kek' } });
    assert.equal(key.name, 'kek');
    assert.equal(key.keyType, 'RSA');
    assert.deepEqual(key.keyOperations, ['wrapKey', 'unwrapKey']);
    assert.equal(key.key?.n?.length, 256);
    assert.deepEqual([...(key.key?.e ?? [])], [1, 0, 1]);
    assert.equal(key.properties.enabled, true);
    assert.deepEqual(key.properties.tags, { purpose: 'kek' });
    assert.equal(key.properties.recoveryLevel, 'Recoverable+Purgeable');
    assert.match(key.id ?? '', new RegExp(`^${kv.vaultUrl}/keys/kek/[0-9a-f]{32}$`));

    // First request went without a token and got the challenge; the retry carried one.
    const [first, second] = kv.requests;
    assert.equal(first?.status, 401);
    assert.equal(first?.authorized, false);
    assert.equal(second?.operation, 'create');
    assert.equal(second?.status, 200);
    assert.equal(second?.apiVersion, '2025-07-01');
    const call = kv.credential.calls[callsBefore];
    assert.deepEqual(call?.scopes, [KEY_VAULT_SCOPE]);
    assert.equal(call?.tenantId, kv.tenantId);
    assert.equal(kv.stats().ok.create, 1);
  });

  it('wraps and unwraps an AES-256-GCM data key with RSA-OAEP-256 (envelope round trip)', async () => {
    const key = await keys.getKey('kek');
    const crypto = new CryptographyClient(key.id!, kv.credential, kv.clientOptions());
    const dek = randomBytes(32);
    const wrapped = await crypto.wrapKey('RSA-OAEP-256', dek);
    assert.equal(wrapped.keyID, key.id);
    assert.equal(wrapped.result.length, 256);
    assert.equal(kv.stats().ok.wrapKey, 1, 'RSA-OAEP-256 wrap is done by the service, not locally');

    // the signing key is sealed with the data key, as the operator does
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', dek, iv);
    const sealed = Buffer.concat([cipher.update('signing key pkcs8'), cipher.final()]);
    const tag = cipher.getAuthTag();

    const unwrapped = await crypto.unwrapKey('RSA-OAEP-256', wrapped.result);
    assert.deepEqual(Buffer.from(unwrapped.result), dek);
    const decipher = createDecipheriv('aes-256-gcm', Buffer.from(unwrapped.result), iv);
    decipher.setAuthTag(tag);
    assert.equal(Buffer.concat([decipher.update(sealed), decipher.final()]).toString(), 'signing key pkcs8');

    // Two different wraps of the same key differ (OAEP is randomised).
    const again = await crypto.wrapKey('RSA-OAEP-256', dek);
    assert.notDeepEqual(Buffer.from(again.result), Buffer.from(wrapped.result));
  });

  it('RSA-OAEP (SHA-1) wrapped locally by the SDK unwraps in the service', async () => {
    const key = await keys.getKey('kek');
    const crypto = new CryptographyClient(key.id!, kv.credential, kv.clientOptions());
    const before = kv.stats().ok.wrapKey ?? 0;
    const dek = randomBytes(32);
    const wrapped = await crypto.wrapKey('RSA-OAEP', dek);
    assert.equal(kv.stats().ok.wrapKey ?? 0, before, 'the SDK does RSA-OAEP wrap locally with the public key');
    const unwrapped = await crypto.unwrapKey('RSA-OAEP', wrapped.result);
    assert.deepEqual(Buffer.from(unwrapped.result), dek);
  });

  it('rotates: new version, old version still unwraps, versions listed', async () => {
    const v1 = await keys.getKey('kek');
    const c1 = new CryptographyClient(v1.id!, kv.credential, kv.clientOptions());
    const dek = randomBytes(32);
    const wrappedV1 = await c1.wrapKey('RSA-OAEP-256', dek);

    const v2 = await keys.rotateKey('kek');
    assert.notEqual(v2.properties.version, v1.properties.version);
    assert.notEqual(Buffer.from(v2.key!.n!).toString('hex'), Buffer.from(v1.key!.n!).toString('hex'));
    assert.deepEqual(v2.keyOperations, ['wrapKey', 'unwrapKey']);
    assert.equal((await keys.getKey('kek')).properties.version, v2.properties.version, 'latest is the rotated one');

    const versions: string[] = [];
    for await (const p of keys.listPropertiesOfKeyVersions('kek')) versions.push(p.version!);
    assert.deepEqual(versions.sort(), [v1.properties.version!, v2.properties.version!].sort());
    assert.deepEqual(kv.versionsOf('kek'), [v1.properties.version, v2.properties.version]);

    // old wrap still opens with the old version
    const unwrapped = await c1.unwrapKey('RSA-OAEP-256', wrappedV1.result);
    assert.deepEqual(Buffer.from(unwrapped.result), dek);
    // but not with the new one
    const c2 = new CryptographyClient(v2.id!, kv.credential, kv.clientOptions());
    await assert.rejects(c2.unwrapKey('RSA-OAEP-256', wrappedV1.result), (e: RestErr) => e.statusCode === 400 && e.code === 'BadParameter');
    // the versionless id follows the latest version
    const latest = new CryptographyClient(`${kv.vaultUrl}/keys/kek`, kv.credential, kv.clientOptions());
    const w2 = await latest.wrapKey('RSA-OAEP-256', dek);
    assert.equal(w2.keyID, v2.id);
  });

  it('lists versions page by page (nextLink)', async () => {
    await keys.createRsaKey('many');
    for (let i = 0; i < 2; i++) await keys.rotateKey('many');
    const pages: number[] = [];
    for await (const page of keys.listPropertiesOfKeyVersions('many').byPage({ maxPageSize: 2 })) pages.push(page.length);
    assert.deepEqual(pages, [2, 1]);
    const names: string[] = [];
    for await (const p of keys.listPropertiesOfKeys()) names.push(p.name);
    assert.deepEqual(names.sort(), ['kek', 'many']);
  });

  it('errors: 404 KeyNotFound, 400 BadParameter, 403 disabled / not permitted', async () => {
    await assert.rejects(keys.getKey('missing'), (e: RestErr) => e.statusCode === 404 && e.code === 'KeyNotFound');
    await assert.rejects(keys.getKey('kek', { version: '0123456789abcdef0123456789abcdef' }), (e: RestErr) => e.statusCode === 404 && e.code === 'KeyNotFound');
    await assert.rejects(keys.rotateKey('missing'), (e: RestErr) => e.statusCode === 404 && e.code === 'KeyNotFound');
    await assert.rejects(keys.createRsaKey('bad_name'), (e: RestErr) => e.statusCode === 400 && e.code === 'BadParameter');
    await assert.rejects(keys.createRsaKey('small', { keySize: 1024 }), (e: RestErr) => e.statusCode === 400 && e.code === 'BadParameter');

    const t = await token(kv);
    const kek = await keys.getKey('kek');
    const base = `/keys/kek/${kek.properties.version}`;
    const badAlg = await raw(kv, 'POST', `${base}/wrapkey?${API}`, { token: t, body: { alg: 'RSA-FOO', value: 'AAAA' } });
    assert.equal(badAlg.status, 400);
    assert.equal(badAlg.json?.error?.code, 'BadParameter');
    const tooLong = await raw(kv, 'POST', `${base}/wrapkey?${API}`, {
      token: t,
      body: { alg: 'RSA-OAEP-256', value: randomBytes(191).toString('base64url') },
    });
    assert.equal(tooLong.status, 400);
    const garbage = await raw(kv, 'POST', `${base}/unwrapkey?${API}`, {
      token: t,
      body: { alg: 'RSA-OAEP-256', value: randomBytes(256).toString('base64url') },
    });
    assert.equal(garbage.status, 400);
    const noVersion = await raw(kv, 'GET', `/keys/kek?`, { token: t });
    assert.equal(noVersion.status, 400);
    assert.equal(noVersion.json?.error?.code, 'BadParameter');

    // key_ops without encrypt: the service says 403 (the SDK checks key_ops itself too)
    const encrypt = await raw(kv, 'POST', `${base}/encrypt?${API}`, { token: t, body: { alg: 'RSA-OAEP-256', value: 'AAAA' } });
    assert.equal(encrypt.status, 403);

    // a disabled version refuses unwrap
    const sign = await keys.createRsaKey('disable-me');
    const c = new CryptographyClient(sign.id!, kv.credential, kv.clientOptions());
    const w = await c.wrapKey('RSA-OAEP-256', randomBytes(32));
    await keys.updateKeyProperties('disable-me', sign.properties.version!, { enabled: false });
    await assert.rejects(c.unwrapKey('RSA-OAEP-256', w.result), (e: RestErr) => e.statusCode === 403 && e.code === 'Forbidden');
  });

  it('revoked tokens get a CAE claims challenge; the SDK fetches a new token and retries', async () => {
    const c = new KeyClient(kv.vaultUrl, kv.credential, kv.clientOptions());
    await c.getKey('kek');
    const old = await token(kv);
    const issued = kv.stats().tokensIssued;
    kv.revokeAllTokens();
    const r = await raw(kv, 'GET', `/keys/kek?${API}`, { token: old });
    assert.equal(r.status, 401);
    assert.match(String(r.headers['www-authenticate']), /error="insufficient_claims", claims="[A-Za-z0-9+/=]+"/);
    await c.getKey('kek');
    assert.equal(kv.stats().tokensIssued, issued + 1);
    assert.ok(kv.credential.calls.at(-1)?.claims?.includes('"essential":true'));
    // unknown tokens get the plain challenge
    const forged = await raw(kv, 'GET', `/keys/kek?${API}`, { token: 'forged' });
    assert.equal(forged.status, 401);
    assert.match(String(forged.headers['www-authenticate']), /^Bearer authorization=/);
  });

  it('imports an existing RSA key, deletes, recovers and purges', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = privateKey.export({ format: 'jwk' });
    const toBytes = (s?: string) => (s ? new Uint8Array(Buffer.from(s, 'base64url')) : undefined);
    const imported: KeyVaultKey = await keys.importKey('imported', {
      kty: 'RSA',
      n: toBytes(jwk.n),
      e: toBytes(jwk.e),
      d: toBytes(jwk.d),
      p: toBytes(jwk.p),
      q: toBytes(jwk.q),
      dp: toBytes(jwk.dp),
      dq: toBytes(jwk.dq),
      qi: toBytes(jwk.qi),
      keyOps: ['wrapKey', 'unwrapKey'],
    });
    assert.equal(Buffer.from(imported.key!.n!).toString('base64url'), jwk.n);
    assert.equal(imported.key?.d, undefined, 'private parts never come back');

    const poller = await keys.beginDeleteKey('imported', { intervalInMs: 10 });
    const deleted = await poller.pollUntilDone();
    assert.equal(deleted.name, 'imported');
    await assert.rejects(keys.getKey('imported'), (e: RestErr) => e.statusCode === 404);
    await assert.rejects(keys.createRsaKey('imported'), (e: RestErr) => e.statusCode === 409 && e.code === 'Conflict');
    const rec = await keys.beginRecoverDeletedKey('imported', { intervalInMs: 10 });
    await rec.pollUntilDone();
    assert.equal((await keys.getKey('imported')).properties.version, imported.properties.version);
    await (await keys.beginDeleteKey('imported', { intervalInMs: 10 })).pollUntilDone();
    await keys.purgeDeletedKey('imported');
    await assert.rejects(keys.getDeletedKey('imported'), (e: RestErr) => e.statusCode === 404);
  });

  it('fault injection: 503, refused connections, hang; then recovers', async () => {
    const kek = await keys.getKey('kek');
    const c = new CryptographyClient(kek.id!, kv.credential, kv.clientOptions());
    const w = await c.wrapKey('RSA-OAEP-256', randomBytes(32));

    await kv.setUnreachable('503');
    const faultedBefore = kv.stats().faulted;
    await assert.rejects(c.unwrapKey('RSA-OAEP-256', w.result), (e: RestErr) => e.statusCode === 503 && e.code === 'ServiceUnavailable');
    assert.equal(kv.stats().faulted, faultedBefore + 1);

    await kv.setUnreachable('refuse');
    // a kept-alive socket closed by the server may surface as a hang-up first
    await assert.rejects(c.unwrapKey('RSA-OAEP-256', w.result), (e: RestErr) =>
      /ECONNREFUSED|ECONNRESET|socket hang up/.test(`${e.code} ${e.message}`),
    );
    await assert.rejects(c.unwrapKey('RSA-OAEP-256', w.result), (e: RestErr) => e.code === 'ECONNREFUSED');

    await kv.setUnreachable('reset');
    await assert.rejects(c.unwrapKey('RSA-OAEP-256', w.result), (e: RestErr) => /ECONNRESET|socket hang up/.test(`${e.code} ${e.message}`));

    await kv.setUnreachable('hang');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    await assert.rejects(c.unwrapKey('RSA-OAEP-256', w.result, { abortSignal: ac.signal }), (e: RestErr) => e.name === 'AbortError');

    await kv.setUnreachable(false);
    const ok = await c.unwrapKey('RSA-OAEP-256', w.result);
    assert.equal(ok.result.length, 32);
  });

  it('counts calls per operation', () => {
    const s = kv.stats();
    assert.ok((s.ok.unwrapKey ?? 0) >= 4);
    assert.ok((s.ok.rotate ?? 0) >= 3);
    assert.ok(s.unauthorized >= 1);
    assert.ok(s.total >= kv.requests.length);
  });
});

import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { CryptographyClient, KeyClient } from '@azure/keyvault-keys';
import { LocalKeyEncryptionKey, openSigningKeyFile, sealSigningKey, tokenKeyId, toHex, type KeyWrapper, type ProtocolError } from '@llmtor/protocol';
import { generateSigningKey } from '@llmtor/protocol/server';
import { startKeyVaultStandIn, type KeyVaultStandIn } from '@llmtor/devtools/keyVaultStandIn';
import { KeyVaultUnwrapper } from '../src/keys/keyVaultUnwrapper.js';

const meta = { purpose: 'credit' as const, notBefore: '2026-01-01T00:00:00Z', issuanceEnd: '2026-02-01T00:00:00Z', redemptionEnd: '2026-03-01T00:00:00Z' };

describe('KeyVaultUnwrapper: key files wrapped by the operator open through Azure Key Vault', function () {
  this.timeout(60_000);
  let kv: KeyVaultStandIn;
  let keyClient: KeyClient;
  let kid: string;

  /** Wraps like the operator does: CryptographyClient.wrapKey RSA-OAEP-256 with a given key version. */
  const wrapperFor = (keyId: string): KeyWrapper => {
    const c = new CryptographyClient(keyId, kv.credential, kv.clientOptions());
    return { ref: { provider: 'azure-keyvault', keyId }, wrapKey: async (d) => (await c.wrapKey('RSA-OAEP-256', d)).result };
  };
  const unwrapper = (extra: Partial<ConstructorParameters<typeof KeyVaultUnwrapper>[0]> = {}) => new KeyVaultUnwrapper({ vaultUrls: [kv.vaultUrl], credential: kv.credential, clientOptions: kv.clientOptions(), timeoutMs: 3_000, ...extra });

  before(async () => {
    kv = await startKeyVaultStandIn();
    keyClient = new KeyClient(kv.vaultUrl, kv.credential, kv.clientOptions());
    kid = (await keyClient.createRsaKey('llmtor-kek', { keySize: 3072, keyOps: ['wrapKey', 'unwrapKey'] })).id!;
  });
  after(async () => {
    await kv?.close();
  });

  it('opens an envelope key file: the data key is unwrapped by the vault, the signing key matches its id', async () => {
    const key = await generateSigningKey();
    const file = await sealSigningKey(key, meta, wrapperFor(kid));
    const before = kv.stats().ok.unwrapKey ?? 0;
    const opened = await openSigningKeyFile(file, unwrapper());
    assert.equal(toHex(tokenKeyId(opened)), file.keyId);
    assert.equal(kv.stats().ok.unwrapKey ?? 0, before + 1, 'the vault unwrapped the data key');
  });

  it('keeps unwrapped data keys: reloading the key directory does not call the vault again', async () => {
    const file = await sealSigningKey(await generateSigningKey(), meta, wrapperFor(kid));
    const u = unwrapper();
    await openSigningKeyFile(file, u);
    const total = kv.stats().total;
    for (let i = 0; i < 3; i++) await openSigningKeyFile(file, u);
    assert.equal(kv.stats().total, total);
  });

  it('still opens files wrapped by an older version after the Key Vault key rotated', async () => {
    const old = await sealSigningKey(await generateSigningKey(), meta, wrapperFor(kid));
    const v2 = (await keyClient.rotateKey('llmtor-kek')).id!;
    assert.notEqual(v2, kid);
    const fresh = await sealSigningKey(await generateSigningKey(), meta, wrapperFor(v2));
    const u = unwrapper();
    assert.equal(toHex(tokenKeyId(await openSigningKeyFile(old, u))), old.keyId);
    assert.equal(toHex(tokenKeyId(await openSigningKeyFile(fresh, u))), fresh.keyId);
  });

  it('refuses a key file naming a key outside the configured vaults, without sending anything', async () => {
    const file = await sealSigningKey(await generateSigningKey(), meta, wrapperFor(kid));
    const evil = { ...file, privateKey: { ...file.privateKey, kek: { provider: 'azure-keyvault' as const, keyId: 'https://attacker.example/keys/llmtor-kek/1' } } };
    const total = kv.stats().total;
    await assert.rejects(openSigningKeyFile(evil, unwrapper()), (e: ProtocolError) => e.code === 'decryption_failure' && /not a versioned key of a configured vault/.test(e.message));
    assert.equal(kv.stats().total, total);
  });

  it('hands files wrapped by a local key-encryption key to the fallback', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const local = new LocalKeyEncryptionKey('main-kek', privateKey);
    const file = await sealSigningKey(await generateSigningKey(), meta, local);
    assert.equal(toHex(tokenKeyId(await openSigningKeyFile(file, unwrapper({ fallback: local })))), file.keyId);
    await assert.rejects(openSigningKeyFile(file, unwrapper()), /only Azure Key Vault is configured/);
  });

  it('an unreachable vault gives a decryption_failure naming the cause (no hang)', async () => {
    const file = await sealSigningKey(await generateSigningKey(), meta, wrapperFor(kid));
    await kv.setUnreachable('hang');
    try {
      const t = Date.now();
      await assert.rejects(openSigningKeyFile(file, unwrapper({ timeoutMs: 500 })), (e: ProtocolError) => e.code === 'decryption_failure' && /Key Vault could not unwrap/.test(e.message));
      assert.ok(Date.now() - t < 5_000);
    } finally {
      await kv.setUnreachable(false);
    }
  });
});

/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { CryptographyClient, KeyClient } from '@azure/keyvault-keys';
import { encodeTokenRequest, keyEntry, keyMetadata, MEDIA_TYPE_TOKEN_REQUEST, TOKEN_TYPE_BLIND_RSA, type KeyEntry, type KeyWrapper } from '@llmtor/protocol';
import { generateSigningKey } from '@llmtor/protocol/server';
import { startKeyVaultStandIn, type KeyVaultStandIn } from '@llmtor/devtools/keyVaultStandIn';
import type { KeyObject } from 'node:crypto';
import { adminGrant, createAccount, fetchDirectory } from '../../src/dev/issuanceClient.js';
import { DirectoryKeySource } from '../../src/keys/directoryKeySource.js';
import { KeyManager } from '../../src/keys/keyManager.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { startProxy, type RunningProxy } from '../../src/stack.js';
import { ADMIN_TOKEN, blindSignatureValid, PEPPER, randomBlindedMsg, sharedTestKeys } from '../support/issuanceHarness.js';
import { localKek, tempDir, writeKeyFile } from '../support/keyFiles.js';

const DAY = 86_400_000;

async function freshCreditKey(): Promise<{ entry: KeyEntry; key: KeyObject }> {
  const key = await generateSigningKey();
  const now = Date.now();
  return { key, entry: keyEntry(keyMetadata(key, { purpose: 'credit', notBefore: new Date(now - 1000).toISOString(), issuanceEnd: new Date(now + DAY).toISOString(), redemptionEnd: new Date(now + 2 * DAY).toISOString() })) };
}

async function until(what: string, f: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('issuance: key directory', function () {
  this.timeout(60_000);
  let dir: string;
  let proxy: RunningProxy;
  let accountKey: string;
  const kekDir = tempDir('llmtor-kek-');
  const kek = localKek(kekDir);

  before(async () => {
    dir = tempDir();
    const keys = await sharedTestKeys();
    for (const e of keys.entries) await writeKeyFile(dir, e, keys.privateKeys.get(e.meta.keyId)!, kek.kek);
    const config = loadConfig({
      env: {},
      overrides: {
        roles: ['issuance'],
        logLevel: 'silent',
        adminToken: ADMIN_TOKEN,
        listen: { host: '127.0.0.1', port: 0 },
        accounts: { pepper: PEPPER },
        keys: { dir, kekFile: kek.pemFile, kekName: kek.name, pollIntervalMs: 200 },
        issuance: { signerThreads: 1 },
      },
    });
    proxy = await startProxy(config);
    accountKey = await createAccount(proxy.url);
    await adminGrant(proxy.url, ADMIN_TOKEN, accountKey, 100);
  });
  after(async () => {
    await proxy.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(kekDir, { recursive: true, force: true });
  });

  async function issueUnder(entry: KeyEntry): Promise<{ status: number; valid: boolean }> {
    const msg = randomBlindedMsg();
    const res = await fetch(`${proxy.url}/token-request`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST },
      body: encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: entry.truncatedId, blindedMsg: msg }),
    });
    const body = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, valid: res.status === 200 && blindSignatureValid(entry, msg, body) };
  }

  it('loads envelope-encrypted key files with the local key-encryption key and issues under them', async () => {
    const dirDoc = await fetchDirectory(proxy.url);
    assert.deepEqual(dirDoc['token-keys'].map((k) => k.purpose).sort(), ['credit', 'permanent', 'transient']);
    const credit = (await sharedTestKeys()).entries.find((e) => e.meta.purpose === 'credit')!;
    assert.deepEqual(await issueUnder(credit), { status: 200, valid: true });
  });

  it('picks up a new key file without restart, signs with it, and drops a removed one', async () => {
    const { entry, key } = await freshCreditKey();
    // Write atomically (as a Secret volume update does): temp name, then rename.
    const path = await writeKeyFile(dir, entry, key, kek.kek);
    renameSync(path, `${path}.tmp`);
    renameSync(`${path}.tmp`, path);
    await until('the new key in the directory', async () => (await fetchDirectory(proxy.url))['token-keys'].some((k) => k['token-key'] === entry.meta.publicKey));
    assert.deepEqual(await issueUnder(entry), { status: 200, valid: true });
    unlinkSync(path);
    await until('the key to disappear', async () => !(await fetchDirectory(proxy.url))['token-keys'].some((k) => k['token-key'] === entry.meta.publicKey));
    assert.equal((await issueUnder(entry)).status, 422);
  });

  it('skips a broken or foreign file and keeps serving the others', async () => {
    writeFileSync(join(dir, 'broken.json'), '{"version":1,');
    const { entry, key } = await freshCreditKey();
    const other = localKek(tempDir('llmtor-kek2-'), kek.name);
    await writeKeyFile(dir, entry, key, other.kek); // wrapped under a KEK this proxy does not have
    await new Promise((r) => setTimeout(r, 600));
    const dirDoc = await fetchDirectory(proxy.url);
    assert.equal(dirDoc['token-keys'].length, 3);
    assert.ok(!dirDoc['token-keys'].some((k) => k['token-key'] === entry.meta.publicKey));
    const credit = (await sharedTestKeys()).entries.find((e) => e.meta.purpose === 'credit')!;
    assert.equal((await issueUnder(credit)).status, 200);
    unlinkSync(join(dir, 'broken.json'));
    unlinkSync(join(dir, `${entry.meta.keyId}.json`));
  });

  it('/readyz is 503 and names a signing key whose key-encryption key is another one, and is ready again once it is gone', async () => {
    await until('ready (the previous test removed its files)', async () => (await fetch(`${proxy.url}/readyz`)).status === 200);
    const { entry, key } = await freshCreditKey();
    const other = localKek(tempDir('llmtor-kek3-'), kek.name); // same name, another key: what a re-created KEK Secret looks like
    const path = await writeKeyFile(dir, entry, key, other.kek);
    type Body = { ready: boolean; checks: Record<string, boolean>; details?: { keys?: { unopenedKeys: { keyId?: string; purpose?: string; canSign?: boolean; problem: string }[] } } };
    const body = await (async () => {
      for (let i = 0; i < 100; i++) {
        const r = await fetch(`${proxy.url}/readyz`);
        const b = (await r.json()) as Body;
        if (r.status === 503) return b;
        await new Promise((res) => setTimeout(res, 50));
      }
      throw new Error('/readyz stayed 200 with a key that does not open');
    })();
    assert.equal(body.ready, false);
    assert.equal(body.checks.keys, false);
    const named = body.details?.keys?.unopenedKeys.find((k) => k.keyId === entry.meta.keyId);
    assert.ok(named, JSON.stringify(body));
    assert.equal(named.purpose, 'credit');
    assert.equal(named.canSign, true);
    assert.match(named.problem, new RegExp(other.kek.fingerprint));
    unlinkSync(path);
    await until('ready again', async () => (await fetch(`${proxy.url}/readyz`)).status === 200);
  });

  it('a redemption-only loader reads public keys without opening (or being able to open) private keys', async () => {
    const source = new DirectoryKeySource(dir, { openPrivateKeys: false });
    const loaded = await source.load();
    assert.equal(loaded.entries.length, 3);
    assert.equal(loaded.privateKeys.size, 0);
    assert.deepEqual(loaded.problems, []);
    const m = new KeyManager(source, pino({ level: 'silent' }), { now: Date.now });
    await m.start();
    assert.equal(m.keyring().size, 3);
    await m.close();
  });

  it('a redemption-only loader reads the public directory ConfigMap (keys.json, no key files) and refuses it for issuance', async () => {
    const pub = tempDir('llmtor-pubdir-');
    try {
      const metas = (await sharedTestKeys()).entries.map((e) => e.meta);
      // As the operator writes its ConfigMap (operator/src/keySecret.ts): keys.json and directory.json.
      writeFileSync(join(pub, 'keys.json'), JSON.stringify(metas));
      writeFileSync(join(pub, 'directory.json'), JSON.stringify({ 'issuer-request-uri': 'x', 'token-keys': [] }));
      const loaded = await new DirectoryKeySource(pub, { openPrivateKeys: false }).load();
      assert.deepEqual(loaded.problems, []);
      assert.deepEqual(loaded.entries.map((e) => e.meta.keyId).sort(), metas.map((m) => m.keyId).sort());
      assert.equal(loaded.privateKeys.size, 0);
      const issuing = await new DirectoryKeySource(pub, { openPrivateKeys: true }).load();
      assert.equal(issuing.entries.length, 0);
      assert.match(issuing.problems[0]!.message, /issuance needs the key files/);
      writeFileSync(join(pub, 'keys.json'), JSON.stringify([{ ...metas[0], keyId: '00'.repeat(32) }]));
      assert.match((await new DirectoryKeySource(pub, { openPrivateKeys: false }).load()).problems[0]!.message, /keyId is not SHA-256 of publicKey/);
    } finally {
      rmSync(pub, { recursive: true, force: true });
    }
  });
});

describe('issuance: key files wrapped by Azure Key Vault (local stand-in of the REST API)', function () {
  this.timeout(60_000);
  let kv: KeyVaultStandIn;
  let dir: string;
  before(async () => {
    kv = await startKeyVaultStandIn();
    dir = tempDir();
  });
  after(async () => {
    await kv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('LLMTOR_KEYVAULT_URL opens files wrapped in the vault, and files wrapped by the local KEK through it as a fallback', async () => {
    const kid = (await new KeyClient(kv.vaultUrl, kv.credential, kv.clientOptions()).createRsaKey('llmtor-kek', { keySize: 2048, keyOps: ['wrapKey', 'unwrapKey'] })).id!;
    const crypto = new CryptographyClient(kid, kv.credential, kv.clientOptions());
    const vaultWrapper: KeyWrapper = { ref: { provider: 'azure-keyvault', keyId: kid }, wrapKey: async (d) => (await crypto.wrapKey('RSA-OAEP-256', d)).result };
    const local = localKek(dir);
    const keys = await sharedTestKeys();
    for (const e of keys.entries) await writeKeyFile(dir, e, keys.privateKeys.get(e.meta.keyId)!, e.meta.purpose === 'transient' ? local.kek : vaultWrapper);
    const config = loadConfig({
      env: {
        LLMTOR_ROLES: 'issuance',
        LLMTOR_KEY_DIR: dir,
        LLMTOR_KEYVAULT_URL: kv.vaultUrl,
        LLMTOR_KEK_FILE: local.pemFile,
        LLMTOR_KEK_NAME: local.name,
        ADMIN_TOKEN,
        LLMTOR_SIGNER_THREADS: '1',
        // Funded by an admin grant; the transient key is tried below.
        LLMTOR_GRANTS_COUNT_AS_PURCHASE: 'true',
      },
      overrides: { logLevel: 'silent', listen: { host: '127.0.0.1', port: 0 } },
    });
    assert.deepEqual(config.keys.keyVaultUrls, [kv.vaultUrl]);
    const proxy = await startProxy(config, { keyVault: { credential: kv.credential, clientOptions: kv.clientOptions() } });
    try {
      assert.equal(kv.stats().ok.unwrapKey, 2, 'the credit and permanent keys were unwrapped by the vault');
      assert.equal(proxy.keys.keyring().size, 3);
      const accountKey = await createAccount(proxy.url);
      await adminGrant(proxy.url, ADMIN_TOKEN, accountKey, 1);
      for (const purpose of ['credit', 'transient'] as const) {
        const entry = keys.entries.find((e) => e.meta.purpose === purpose)!;
        const msg = randomBlindedMsg();
        const res = await fetch(`${proxy.url}/token-request`, {
          method: 'POST',
          headers: { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST },
          body: encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: entry.truncatedId, blindedMsg: msg }),
        });
        assert.equal(res.status, 200, purpose);
        assert.ok(blindSignatureValid(entry, msg, new Uint8Array(await res.arrayBuffer())));
      }
    } finally {
      await proxy.stop();
    }
    assert.match(
      problemsOf(() => loadConfig({ env: { LLMTOR_KEYVAULT_URL: 'http://vault.example, https://v.vault.azure.net/keys/x' } })),
      /setting keys\.keyVaultUrls\.0 \(env LLMTOR_KEYVAULT_URL\): must be a vault URL[\s\S]*keys\.keyVaultUrls\.1/,
    );
  });
});

function problemsOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.join('\n');
    throw e;
  }
  return '';
}

import assert from 'node:assert/strict';
import { KeyClient } from '@azure/keyvault-keys';
import { keyEntry, Keyring, type SigningKeyFile } from '@llmtor/protocol';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { AzureKeyVaultKek, ManualClock, metadataOf, startOperator, type IssuerStatus, type RunningOperator } from '../src/index.js';
import { Cluster, applyIssuer, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';
import { startKeyVaultStandIn, type KeyVaultStandIn } from '@llmtor/devtools/keyVaultStandIn';
import { issueToken, loadLikeProxy, redeem } from './support/tokens.js';

const H = 3_600_000;

describe('Azure Key Vault envelope (real @azure/keyvault-keys SDK against the HTTPS stand-in)', function () {
  this.timeout(120_000);
  let env: KubeTestEnv;
  let cluster: Cluster;
  let kv: KeyVaultStandIn;
  let keys: KeyClient;
  let ns: string;
  let op: RunningOperator;
  const clock = new ManualClock(Date.parse('2026-05-10T08:00:00Z'));
  const kek = () => new AzureKeyVaultKek({ vaultUrl: kv.vaultUrl, keyName: 'llmtor-kek', credential: kv.credential, clientOptions: kv.clientOptions(), timeoutMs: 3_000 });
  const cond = (s: IssuerStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type);

  before(async function () {
    this.timeout(600_000);
    env = await kubeEnv();
    cluster = new Cluster(kubeConfig(env));
    ns = await newNamespace(env, 'akv');
    kv = await startKeyVaultStandIn();
    keys = new KeyClient(kv.vaultUrl, kv.credential, kv.clientOptions());
    await keys.createRsaKey('llmtor-kek', { keySize: 3072, keyOps: ['wrapKey', 'unwrapKey'] });
    op = await startOperator({
      kc: kubeConfig(env),
      namespace: ns,
      identity: 'op-kv',
      clock,
      keyVault: () => kek(),
      resyncMs: 500,
      backoff: { baseMs: 300, maxMs: 2_400 },
      lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 },
    });
  });
  after(async () => {
    await op?.stop();
    await kv?.close();
  });

  it('wraps every data key with the Key Vault key (RSA-OAEP-256); only wrapped blobs are in the Secret', async () => {
    kv.resetStats();
    await applyIssuer(env, ns, 'main', { keyProtection: { azureKeyVault: { vaultUrl: kv.vaultUrl, keyName: 'llmtor-kek' } }, credit: { redemptionGrace: '240h' } });
    const st = await waitFor('Ready', async () => {
      const s = (await cluster.issuer(ns, 'main')).status;
      return cond(s, 'Ready')?.status === 'True' ? s : undefined;
    });
    const [v1] = kv.versionsOf('llmtor-kek');
    assert.equal(cond(st, 'KeyVaultReachable')?.status, 'True');
    assert.equal(st.keyEncryptionKey, `${kv.vaultUrl}/keys/llmtor-kek/${v1}`);
    const files = await cluster.keyFiles(ns, 'main-signing-keys');
    assert.equal(files.size, 3);
    for (const f of files.values()) {
      assert.equal(f.privateKey.type, 'envelope');
      assert.deepEqual(f.privateKey.type === 'envelope' && f.privateKey.kek, { provider: 'azure-keyvault', keyId: `${kv.vaultUrl}/keys/llmtor-kek/${v1}`, fingerprint: `llmtor-kek/${v1}` });
      assert.ok(!JSON.stringify(f).includes('pkcs8'), 'no plain private key');
    }
    assert.ok((kv.stats().ok.wrapKey ?? 0) + (kv.stats().ok.get ?? 0) >= 1, 'the SDK talked to the vault');
    assert.equal(await cluster.secret(ns, 'main-kek'), undefined, 'no local KEK is created with Key Vault protection');
    // the proxy's view: unwrap through Key Vault, sign, redeem
    const loaded = await loadLikeProxy(files.values(), kek());
    const credit = loaded.ring.currentIssuing('credit', clock.now())!;
    const token = await issueToken(files.get(credit.meta.keyId)!, loaded.keys.get(credit.meta.keyId)!);
    redeem(loaded.ring, token, clock.now());
    assert.ok((kv.stats().ok.unwrapKey ?? 0) >= 3, 'data keys were unwrapped by the vault');
  });

  it('re-wraps every blob when the Key Vault key gets a new version', async () => {
    const rotated = await keys.rotateKey('llmtor-kek');
    const v2 = rotated.properties.version!;
    const files = await waitFor('re-wrapped', async () => {
      const fs = await cluster.keyFiles(ns, 'main-signing-keys');
      return [...fs.values()].every((f) => f.privateKey.type === 'envelope' && f.privateKey.kek.keyId.endsWith(`/${v2}`)) ? fs : undefined;
    });
    const loaded = await loadLikeProxy(files.values(), kek());
    assert.equal(loaded.keys.size, 3);
    // The Secret is written before the status and the event: wait for those too.
    await waitFor('KeyRewrapped event', async () => (await cluster.events(ns)).some((e) => e.reason === 'KeyRewrapped'));
    await waitFor('status names the new KEK version', async () => ((await cluster.issuer(ns, 'main')).status?.keyEncryptionKey ?? '').endsWith(`/${v2}`));
  });

  it('Key Vault unreachable: condition False with an actionable message, back-off, nothing deleted; recovers afterwards', async () => {
    const before = await cluster.secret(ns, 'main-signing-keys');
    const filesBefore = await cluster.keyFiles(ns, 'main-signing-keys');
    const firstCredit = [...filesBefore.values()].find((f) => f.purpose === 'credit')!;
    await kv.setUnreachable('503');
    kv.resetStats();
    // move past the first credit key's redemption window: a removal and a new key are due, but need the vault
    clock.set(Date.parse(firstCredit.redemptionEnd) + H);
    const failing = await waitFor('KeyVaultReachable=False', async () => {
      const s = (await cluster.issuer(ns, 'main')).status;
      return cond(s, 'KeyVaultReachable')?.status === 'False' && (s?.failedAttempts ?? 0) >= 3 ? s : undefined;
    }, 30_000);
    const c = cond(failing, 'KeyVaultReachable')!;
    assert.equal(c.reason, 'KeyVaultUnreachable');
    assert.match(c.message, /cannot reach Key Vault .*HTTP 503.*existing keys stay in place/);
    assert.equal(cond(failing, 'Rotating')?.reason, 'RotationBlocked');
    assert.ok(Date.parse(failing.nextRetryTime!) > Date.parse(failing.lastFailureTime!));
    // back-off: 300, 600, 1200, 2400, 2400 ms … over 4 s that is a handful of attempts, not one per resync (500 ms)
    const t0 = Date.now();
    const faulted0 = kv.stats().faulted;
    await new Promise((r) => setTimeout(r, 4_000));
    const attempts = kv.stats().faulted - faulted0;
    assert.ok(attempts >= 1 && attempts <= 4, `${attempts} vault calls in ${Date.now() - t0} ms`);
    const during = await cluster.secret(ns, 'main-signing-keys');
    assert.equal(during!.metadata!.resourceVersion, before!.metadata!.resourceVersion, 'the Secret was not touched');
    assert.ok((await cluster.events(ns)).some((e) => e.type === 'Warning' && e.reason === 'KeyVaultUnreachable'));

    await kv.setUnreachable(false);
    const recovered = await waitFor('recovered', async () => {
      const s = (await cluster.issuer(ns, 'main')).status;
      return cond(s, 'KeyVaultReachable')?.status === 'True' && s?.failedAttempts === 0 ? s : undefined;
    }, 30_000);
    assert.equal(recovered.nextRetryTime, undefined);
    const after = await cluster.keyFiles(ns, 'main-signing-keys');
    assert.ok(!after.has(firstCredit.keyId), 'the expired key is removed once the operator can act again');
    const ring = new Keyring([...after.values()].map((f: SigningKeyFile) => keyEntry(metadataOf(f))));
    assert.ok(ring.currentIssuing('credit', clock.now()));
    assert.ok(recovered.keys!.some((k) => k.keyId === firstCredit.keyId && k.state === 'Expired'), 'the removed key is kept in the status history');
  });
});

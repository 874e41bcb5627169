import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKeyEncryptionKey, openSigningKeyFile, tokenKeyId, toHex } from '@llmtor/protocol';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { LOCAL_KEK_DATA_KEY, startOperator, type IssuerStatus, type RunningOperator } from '../src/index.js';
import { Cluster, applyIssuer, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';

/**
 * Issue 10 item 1: deleting the local key-encryption key Secret used to make the
 * operator create a new one and stay Ready while no key file opened any more.
 * Now: Ready=False KeyEncryptionKeyLost, a Warning event, a metric, no new KEK;
 * the backup taken as docs/operator.md says restores it and the same keys open.
 */
describe('operator: losing and restoring the local key-encryption key (real kube-apiserver)', function () {
  this.timeout(120_000);
  let env: KubeTestEnv;
  let cluster: Cluster;
  let ns: string;
  let op: RunningOperator;
  let work: string;

  before(async function () {
    this.timeout(600_000);
    env = await kubeEnv();
    cluster = new Cluster(kubeConfig(env));
    ns = await newNamespace(env, 'kek');
    work = await mkdtemp(join(tmpdir(), 'llmtor-kek-backup-'));
    op = await startOperator({ kc: kubeConfig(env), namespace: ns, identity: 'op-kek', resyncMs: 1_000, backoff: { baseMs: 200, maxMs: 1_000 }, lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 } });
  });
  after(async () => {
    await op?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const ready = (s: IssuerStatus | undefined) => s?.conditions?.find((c) => c.type === 'Ready');
  const kubectl = async (args: string[], input?: string) => {
    const r = await env.kubectl(['-n', ns, ...args], input !== undefined ? { input } : {});
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  it('KEK deleted -> KeyEncryptionKeyLost (no new KEK); backup re-applied -> Ready, the same keys open', async () => {
    await applyIssuer(env, ns, 'main', {});
    await waitFor('Ready', async () => ready((await cluster.issuer(ns, 'main')).status)?.status === 'True');
    const before = await cluster.keyFiles(ns, 'main-signing-keys');
    assert.equal(before.size, 3);

    // The backup, exactly as docs/operator.md says.
    const backup = await kubectl(['get', 'secret', 'main-kek', '-o', 'yaml']);
    const backupFile = join(work, 'main-kek.backup.yaml');
    await writeFile(backupFile, backup, { mode: 0o600 });
    const pem = Buffer.from((await cluster.secret(ns, 'main-kek'))!.data![LOCAL_KEK_DATA_KEY]!, 'base64').toString('utf8');
    const original = new LocalKeyEncryptionKey('main-kek', pem);
    for (const f of before.values()) assert.equal(f.privateKey.type === 'envelope' && f.privateKey.kek.fingerprint, original.fingerprint, 'every file names its KEK by fingerprint');

    await kubectl(['delete', 'secret', 'main-kek']);
    const lost = await waitFor('KeyEncryptionKeyLost', async () => {
      const c = ready((await cluster.issuer(ns, 'main')).status);
      return c?.reason === 'KeyEncryptionKeyLost' ? c : undefined;
    });
    assert.equal(lost.status, 'False');
    assert.match(lost.message, /Secret kek-[0-9a-f]+\/main-kek does not exist, but 3 signing key\(s\)/);
    assert.ok(lost.message.includes(original.fingerprint), lost.message);
    assert.match(lost.message, /Restore Secret main-kek from backup: kubectl apply -n \S+ -f main-kek\.backup\.yaml/);
    await waitFor('Warning event', async () => (await cluster.events(ns)).some((e) => e.type === 'Warning' && e.reason === 'KeyEncryptionKeyLost'));
    assert.match(await op.metrics.registry.getSingleMetricAsString('llmtor_operator_keys_unopenable'), new RegExp(`llmtor_operator_keys_unopenable\\{namespace="${ns}",issuer="main"\\} 3`));
    // Several reconciles later, still no KEK was made up and no key file changed.
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal(await cluster.secret(ns, 'main-kek'), undefined, 'the operator must not generate a new KEK');
    assert.deepEqual([...(await cluster.keyFiles(ns, 'main-signing-keys')).keys()].sort(), [...before.keys()].sort());

    // Someone creates a fresh KEK under the same name: still lost, the message says it is another key.
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await writeFile(join(work, 'other.pem'), stranger, { mode: 0o600 });
    await kubectl(['create', 'secret', 'generic', 'main-kek', `--from-file=${LOCAL_KEK_DATA_KEY}=${join(work, 'other.pem')}`]);
    await kubectl(['label', 'secret', 'main-kek', 'app.kubernetes.io/managed-by=llmtor-operator', 'llmtor.dev/issuer=main']);
    await waitFor('lost: another key', async () => /holds another key \(sha256:/.test(ready((await cluster.issuer(ns, 'main')).status)?.message ?? ''));
    await kubectl(['delete', 'secret', 'main-kek']);

    // Restore, exactly as docs/operator.md says.
    await kubectl(['apply', '-f', backupFile]);
    const ok = await waitFor('Ready again', async () => {
      const c = ready((await cluster.issuer(ns, 'main')).status);
      return c?.status === 'True' ? c : undefined;
    });
    assert.equal(ok.reason, 'KeysCurrent');
    const after = await cluster.keyFiles(ns, 'main-signing-keys');
    assert.deepEqual([...after.keys()].sort(), [...before.keys()].sort(), 'the same keys, none regenerated');
    const restored = new LocalKeyEncryptionKey('main-kek', Buffer.from((await cluster.secret(ns, 'main-kek'))!.data![LOCAL_KEK_DATA_KEY]!, 'base64').toString('utf8'));
    for (const f of after.values()) assert.equal(toHex(tokenKeyId(await openSigningKeyFile(f, restored))), f.keyId);
    assert.match(await op.metrics.registry.getSingleMetricAsString('llmtor_operator_keys_unopenable'), new RegExp(`llmtor_operator_keys_unopenable\\{namespace="${ns}",issuer="main"\\} 0`));
  });
});

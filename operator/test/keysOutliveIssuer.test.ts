import assert from 'node:assert/strict';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { startControllerManager, type RunningControllerManager } from '@llmtor/devtools/kubeControllerManager';
import { API_VERSION, KEEP_ANNOTATION, KIND, startOperator, type IssuerStatus, type RunningOperator } from '../src/index.js';
import { Cluster, applyIssuer, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';

/**
 * Issue 10 item 2: the signing-keys Secret carried a controller owner reference to
 * the TokenIssuer, so deleting the issuer (helm uninstall, a rename) let the garbage
 * collector delete every key while tokens signed under them were still redeemable.
 * Here a real kube-controller-manager runs the garbage collector against the test
 * API server; the ConfigMap (still owned) and a Secret carrying the old owner
 * reference are the control: they are collected, the keys are not.
 */
describe('operator: signing keys outlive their TokenIssuer (real garbage collector)', function () {
  this.timeout(180_000);
  let env: KubeTestEnv;
  let cluster: Cluster;
  let ns: string;
  let op: RunningOperator | undefined;
  let kcm: RunningControllerManager | undefined;

  before(async function () {
    this.timeout(1_800_000); // the first run may build kube-controller-manager
    env = await kubeEnv();
    cluster = new Cluster(kubeConfig(env));
    ns = await newNamespace(env, 'gc');
    kcm = await startControllerManager(env, { controllers: ['garbagecollector'] });
    op = await startOperator({ kc: kubeConfig(env), namespace: ns, identity: 'op-gc', resyncMs: 1_000, lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 } });
  });
  after(async () => {
    await op?.stop();
    await kcm?.stop();
  });

  const ready = (s: IssuerStatus | undefined) => s?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';

  it('deleting the TokenIssuer leaves the keys Secret (and the KEK); re-creating it adopts the same keys', async () => {
    await applyIssuer(env, ns, 'main', {});
    const issuer = await waitFor('Ready', async () => {
      const i = await cluster.issuer(ns, 'main');
      return ready(i.status) ? i : undefined;
    });
    const keysBefore = await cluster.keyFiles(ns, 'main-signing-keys');
    assert.equal(keysBefore.size, 3);
    const secret = (await cluster.secret(ns, 'main-signing-keys'))!;
    assert.deepEqual(secret.metadata!.ownerReferences ?? [], [], 'no owner reference on the keys');
    assert.match(secret.metadata!.annotations![KEEP_ANNOTATION]!, /kept when the TokenIssuer is deleted/);

    // An operator before this fix wrote a controller owner reference: the next reconcile drops it.
    const legacy = { apiVersion: API_VERSION, kind: KIND, name: 'main', uid: issuer.metadata.uid!, controller: true, blockOwnerDeletion: true };
    await cluster.core.patchNamespacedSecret({ namespace: ns, name: 'main-signing-keys', body: [{ op: 'add', path: '/metadata/ownerReferences', value: [legacy] }] });
    await waitFor('legacy owner reference removed', async () => ((await cluster.secret(ns, 'main-signing-keys'))!.metadata!.ownerReferences ?? []).length === 0);
    assert.ok((await cluster.events(ns)).some((e) => e.reason === 'OwnerReferenceRemoved'));

    // Control: what the old Secret was — a copy with the old owner reference — is collected.
    await cluster.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'control-owned-keys', ownerReferences: [legacy] }, data: secret.data! } });
    assert.ok((await cluster.configMapData(ns, 'main-directory')) !== undefined);

    await op!.stop();
    op = undefined;
    const deletedAt = Date.now();
    const del = await env.kubectl(['delete', 'tokenissuer', 'main', '-n', ns, '--wait=true', '--timeout=60s']);
    assert.equal(del.code, 0, del.stderr);
    // The garbage collector works (it collects what is still owned)…
    await waitFor('control Secret collected', async () => (await cluster.secret(ns, 'control-owned-keys')) === undefined, 60_000, 250).catch(async (e: Error) => {
      throw new Error(`${e.message}\n--- kube-controller-manager\n${await kcm!.logTail(30)}`);
    });
    await waitFor('directory ConfigMap collected', async () => (await cluster.configMapData(ns, 'main-directory')) === undefined, 30_000, 250);
    console.log(`      garbage collector: owned objects gone ${((Date.now() - deletedAt) / 1000).toFixed(1)} s after kubectl delete`);
    // …and the keys are still there, unchanged, and so is the KEK.
    await new Promise((r) => setTimeout(r, 2_000));
    const kept = await cluster.keyFiles(ns, 'main-signing-keys');
    assert.deepEqual([...kept.keys()].sort(), [...keysBefore.keys()].sort());
    assert.ok(await cluster.secret(ns, 'main-kek'));

    // Reinstall: the same name adopts the Secret; the credit key that signed before signs again.
    op = await startOperator({ kc: kubeConfig(env), namespace: ns, identity: 'op-gc-2', resyncMs: 1_000, lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 } });
    await applyIssuer(env, ns, 'main', {});
    const again = await waitFor('Ready after reinstall', async () => {
      const i = await cluster.issuer(ns, 'main');
      return ready(i.status) ? i : undefined;
    });
    assert.equal(again.status!.currentCreditKey, issuer.status!.currentCreditKey);
    assert.deepEqual([...(await cluster.keyFiles(ns, 'main-signing-keys')).keys()].sort(), [...keysBefore.keys()].sort());
  });
});

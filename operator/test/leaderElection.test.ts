import assert from 'node:assert/strict';
import { CoordinationV1Api } from '@kubernetes/client-node';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { ROTATE_ANNOTATION, startOperator, type RunningOperator } from '../src/index.js';
import { Cluster, applyIssuer, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';

const LEASE = { name: 'llmtor-operator', leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 250 };

describe('leader election on a coordination.k8s.io Lease', function () {
  this.timeout(120_000);
  let env: KubeTestEnv;
  let cluster: Cluster;
  let ns: string;
  const ops: RunningOperator[] = [];

  before(async function () {
    this.timeout(600_000);
    env = await kubeEnv();
    cluster = new Cluster(kubeConfig(env));
    ns = await newNamespace(env, 'lease');
  });
  after(async () => {
    for (const o of ops) await o.stop().catch(() => undefined);
  });

  const reconciles = async (o: RunningOperator) => (await o.metrics.reconciles.get()).values.reduce((n, v) => n + v.value, 0);
  const holder = async () => (await kubeConfig(env).makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns, name: LEASE.name })).spec?.holderIdentity;

  it('two replicas: exactly one leads and reconciles; the other takes over within the lease duration when it dies', async () => {
    const start = (identity: string) => startOperator({ kc: kubeConfig(env), namespace: ns, identity, resyncMs: 1_000, lease: LEASE });
    ops.push(await start('replica-a'), await start('replica-b'));
    const [a, b] = ops as [RunningOperator, RunningOperator];
    const leader = await waitFor('a leader', async () => ops.find((o) => o.isLeader()));
    const follower = leader === a ? b : a;
    await applyIssuer(env, ns, 'main', { keyProtection: { local: { secretName: 'lease-kek' } } });
    await waitFor('Ready', async () => (await cluster.issuer(ns, 'main')).status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True'), 30_000);
    // for 3 s (more than the lease duration), never two leaders
    for (let t = Date.now(); Date.now() - t < 3_000; await new Promise((r) => setTimeout(r, 50))) {
      assert.equal(ops.filter((o) => o.isLeader()).length, 1);
    }
    assert.equal(await holder(), leader.identity);
    assert.ok((await reconciles(leader)) >= 1);
    assert.equal(await reconciles(follower), 0, 'the follower does not act');

    // the leader dies without releasing the Lease
    const died = Date.now();
    await leader.stop({ release: false });
    await waitFor('fail-over', async () => follower.isLeader(), 10_000, 20);
    const failoverMs = Date.now() - died;
    assert.ok(failoverMs <= LEASE.leaseDurationMs + 2 * LEASE.retryPeriodMs + 500, `fail-over took ${failoverMs} ms`);
    assert.equal(await holder(), follower.identity);
    console.log(`      fail-over after ${failoverMs} ms (lease duration ${LEASE.leaseDurationMs} ms)`);

    // the new leader acts
    const before = (await cluster.issuer(ns, 'main')).status!.currentCreditKey;
    const r = await env.kubectl(['annotate', 'tokenissuer', 'main', '-n', ns, `${ROTATE_ANNOTATION}=now`]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('rotation by the new leader', async () => (await cluster.keyFiles(ns, 'main-signing-keys')).size === 4, 15_000);
    assert.ok((await reconciles(follower)) >= 1);
    assert.equal((await cluster.issuer(ns, 'main')).status!.currentCreditKey, before, 'the forced key is published ahead, the current one still signs');
  });

  it('a clean stop releases the Lease: the next replica leads at once', async () => {
    const current = ops.find((o) => o.isLeader())!;
    const next = await startOperator({ kc: kubeConfig(env), namespace: ns, identity: 'replica-c', resyncMs: 1_000, lease: LEASE });
    ops.push(next);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(next.isLeader(), false);
    const t = Date.now();
    await current.stop();
    await waitFor('replica-c leads', async () => next.isLeader(), 5_000, 20);
    const ms = Date.now() - t;
    assert.ok(ms < LEASE.leaseDurationMs, `took over after ${ms} ms, before the lease would have expired`);
    assert.equal(await holder(), 'replica-c');
  });
});

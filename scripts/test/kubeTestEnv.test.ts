import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type ApiException,
} from '@kubernetes/client-node';
import { ensureKubeBinaries, startKubeTestEnv, type KubeTestEnv } from '../src/kubeTestEnv.js';

const CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.llmtor.dev
spec:
  group: test.llmtor.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
          status:
            type: object
            properties:
              ready: {type: boolean}
`;

const WIDGET = `apiVersion: test.llmtor.dev/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3}
`;

describe('kubeTestEnv: real kube-apiserver + etcd', function () {
  let env: KubeTestEnv;

  before(async function () {
    // First run on a machine builds kube-apiserver and etcd (~4-5 min on 2 cores).
    this.timeout(40 * 60_000);
    await ensureKubeBinaries();
    this.timeout(120_000);
    env = await startKubeTestEnv();
    console.log(
      `      kube test env ${env.kubeVersion}: etcd ready ${env.timings.etcdReadyMs} ms, ` +
        `apiserver ready ${env.timings.apiServerReadyMs} ms, total ${env.timings.totalMs} ms`,
    );
  });

  after(async function () {
    this.timeout(30_000);
    await env?.stop();
  });

  it('serves /version with the built version and works with kubectl', async function () {
    this.timeout(60_000);
    const r = await env.kubectl(['version', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const v = JSON.parse(r.stdout) as { serverVersion: { gitVersion: string; minor: string } };
    assert.equal(v.serverVersion.gitVersion, env.kubeVersion);
    const ns = await env.kubectl(['get', 'namespaces', '-o', 'name']);
    assert.equal(ns.code, 0, ns.stderr);
    assert.match(ns.stdout, /namespace\/default/);
    assert.match(ns.stdout, /namespace\/kube-system/);
  });

  it('kubectl applies a CRD and a custom object and reads it back', async function () {
    this.timeout(60_000);
    const crd = await env.kubectl(['apply', '-f', '-'], { input: CRD });
    assert.equal(crd.code, 0, crd.stderr);
    const est = await env.kubectl([
      'wait', '--for=condition=Established', '--timeout=30s', 'crd/widgets.test.llmtor.dev',
    ]);
    assert.equal(est.code, 0, est.stderr);

    // Discovery of a fresh CRD can lag a moment behind Established.
    let applied = await env.kubectl(['apply', '-f', '-'], { input: WIDGET });
    for (let i = 0; i < 20 && applied.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 250));
      applied = await env.kubectl(['apply', '-f', '-'], { input: WIDGET });
    }
    assert.equal(applied.code, 0, applied.stderr);

    const got = await env.kubectl(['get', 'widgets.test.llmtor.dev', 'w1', '-o', 'json']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal((JSON.parse(got.stdout) as { spec: { size: number } }).spec.size, 3);

    const table = await env.kubectl(['get', 'widgets']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /NAME\s+SIZE/);
    assert.match(table.stdout, /w1\s+3/);

    // Structural schema validation is enforced by the real server.
    const bad = await env.kubectl(['apply', '-f', '-'], { input: WIDGET.replace('size: 3', 'size: 0') });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /spec\.size/);
  });

  it('client-node: custom object status subresource', async function () {
    const kc = new KubeConfig();
    kc.loadFromOptions(env.kubeConfigOptions);
    const co = kc.makeApiClient(CustomObjectsApi);
    const ref = { group: 'test.llmtor.dev', version: 'v1', namespace: 'default', plural: 'widgets', name: 'w1' };
    const patched = (await co.patchNamespacedCustomObjectStatus(
      { ...ref, body: { status: { ready: true } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as { status?: { ready?: boolean }; spec: { size: number } };
    assert.equal(patched.status?.ready, true);
    assert.equal(patched.spec.size, 3);
  });

  it('client-node: lists and patches a ConfigMap', async function () {
    const kc = new KubeConfig();
    kc.loadFromOptions(env.kubeConfigOptions);
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'cm1', labels: { app: 'llmtor-test' } }, data: { a: '1' } },
    });
    const list = await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'app=llmtor-test' });
    assert.deepEqual(
      list.items.map((c) => c.metadata?.name),
      ['cm1'],
    );
    const merged = await core.patchNamespacedConfigMap(
      { namespace: 'default', name: 'cm1', body: { data: { b: '2' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.deepEqual(merged.data, { a: '1', b: '2' });
    // default patch type of client-node 1.x is JSON patch
    const jsonPatched = await core.patchNamespacedConfigMap({
      namespace: 'default',
      name: 'cm1',
      body: [{ op: 'replace', path: '/data/a', value: 'x' }],
    });
    assert.equal(jsonPatched.data?.a, 'x');
    const viaKubectl = await env.kubectl(['get', 'configmap', 'cm1', '-o', 'jsonpath={.data.a}{.data.b}']);
    assert.equal(viaKubectl.stdout, 'x2');
  });

  it('client-node: creates and renews a coordination.k8s.io/v1 Lease with optimistic concurrency', async function () {
    const kc = new KubeConfig();
    kc.loadFromOptions(env.kubeConfigOptions);
    const coord = kc.makeApiClient(CoordinationV1Api);
    const now = new V1MicroTime();
    // Lease times are metav1.MicroTime: the 1.33 server parses exactly six fractional digits,
    // and a plain Date is serialised with toISOString() (milliseconds) -> 400
    // (kubernetes-client/javascript#828). client-node exports V1MicroTime for this.
    await assert.rejects(
      coord.createNamespacedLease({
        namespace: 'default',
        body: { metadata: { name: 'plain-date' }, spec: { holderIdentity: 'x', renewTime: new Date() } },
      }),
      (e: ApiException<string>) => e.code === 400 && /cannot parse/.test(String(e.body)),
    );
    const created = await coord.createNamespacedLease({
      namespace: 'default',
      body: {
        metadata: { name: 'llmtor-operator-leader' },
        spec: { holderIdentity: 'pod-a', leaseDurationSeconds: 15, acquireTime: now, renewTime: now, leaseTransitions: 0 },
      },
    });
    assert.equal(created.spec?.holderIdentity, 'pod-a');
    const rv1 = created.metadata?.resourceVersion;
    assert.ok(rv1);

    const renewed = await coord.replaceNamespacedLease({
      namespace: 'default',
      name: 'llmtor-operator-leader',
      body: { ...created, spec: { ...created.spec, renewTime: new V1MicroTime(now.getTime() + 5000) } },
    });
    assert.notEqual(renewed.metadata?.resourceVersion, rv1);
    // Read back, MicroTime fields are the raw string (typed V1MicroTime, not revived).
    assert.equal(new Date(String(renewed.spec?.renewTime)).getTime(), now.getTime() + 5000);
    assert.match(String(renewed.spec?.renewTime), /\.\d{6}Z$/);

    // A second writer with the stale resourceVersion loses: 409 Conflict.
    await assert.rejects(
      coord.replaceNamespacedLease({
        namespace: 'default',
        name: 'llmtor-operator-leader',
        body: { ...created, spec: { ...created.spec, holderIdentity: 'pod-b' } },
      }),
      (e: ApiException<unknown>) => e.code === 409,
    );
    const read = await coord.readNamespacedLease({ namespace: 'default', name: 'llmtor-operator-leader' });
    assert.equal(read.spec?.holderIdentity, 'pod-a');
  });

  it('enforces RBAC for a user without system:masters', async function () {
    this.timeout(60_000);
    const limited = await startKubeTestEnv({ users: [{ name: 'viewer', groups: [] }] });
    try {
      const kc = new KubeConfig();
      kc.loadFromOptions(limited.kubeConfigOptionsFor('viewer'));
      const core = kc.makeApiClient(CoreV1Api);
      await assert.rejects(
        core.listNamespacedConfigMap({ namespace: 'default' }),
        (e: ApiException<unknown>) => e.code === 403,
      );
    } finally {
      await limited.stop();
    }
    assert.equal(existsSync(limited.dir), false);
  });

  it('stop() kills both processes and removes the temp dir', async function () {
    this.timeout(60_000);
    const other = await startKubeTestEnv();
    const r = await other.kubectl(['get', 'ns', 'default', '-o', 'name']);
    assert.equal(r.stdout.trim(), 'namespace/default');
    const dir = other.dir;
    const pids = [other.pids.etcd, other.pids.apiServer];
    for (const pid of pids) assert.doesNotThrow(() => process.kill(pid, 0));
    await other.stop();
    for (const pid of pids) {
      assert.throws(() => process.kill(pid, 0), (e: NodeJS.ErrnoException) => e.code === 'ESRCH');
    }
    await other.stop(); // idempotent
    assert.equal(existsSync(dir), false);
    const after = await other.kubectl(['get', 'ns'], { timeoutMs: 10_000 });
    assert.notEqual(after.code, 0);
  });
});

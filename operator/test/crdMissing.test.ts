import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { startKubeTestEnv, type KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { CRD_MISSING_MESSAGE, startOperator, type RunningOperator } from '../src/index.js';
import { CRD_FILE, kubeConfig, waitFor } from './support/cluster.js';

/**
 * Issue 10 item 5: with the CRD not installed the operator logged a multi-line 404
 * every second, with no hint, and /readyz said ok. Its own API server here (the
 * shared one has the CRD applied).
 */
describe('operator without the TokenIssuer CRD (real kube-apiserver)', function () {
  this.timeout(120_000);
  let env: KubeTestEnv;
  let op: RunningOperator | undefined;
  const logs: { level: string; msg: string }[] = [];

  before(async function () {
    this.timeout(600_000);
    env = await startKubeTestEnv();
  });
  after(async () => {
    await op?.stop();
    await env?.stop();
  });

  it('says once a minute in one line how to install it, is not ready, and becomes ready once it is applied', async () => {
    op = await startOperator({
      kc: kubeConfig(env),
      namespace: 'default',
      identity: 'op-nocrd',
      log: (level, msg) => logs.push({ level, msg }),
      metricsPort: 0,
      metricsHost: '127.0.0.1',
      crdProbe: { intervalMs: 200 },
      lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 },
    });
    const port = (op.metricsServer!.address() as AddressInfo).port;
    const readyz = async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
    await waitFor('leader', async () => op!.isLeader());
    await new Promise((r) => setTimeout(r, 4_000)); // 20 probes, ~4 watch retries
    assert.equal(await readyz(), 503);
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'alive: a restart would not help');
    const said = logs.filter((l) => l.msg === CRD_MISSING_MESSAGE);
    assert.equal(said.length, 1, `once, not per probe or retry: ${JSON.stringify(logs.slice(0, 10))}`);
    assert.equal(CRD_MISSING_MESSAGE, 'CRD tokenissuers.llmtor.dev is not installed: kubectl apply -f crds/');
    assert.ok(logs.every((l) => !l.msg.includes('\n')), 'no multi-line log');
    assert.ok(logs.filter((l) => l.level === 'warn' || l.level === 'error').length <= 2, JSON.stringify(logs));

    const r = await env.kubectl(['apply', '-f', CRD_FILE]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('ready once the CRD is there', async () => (await readyz()) === 200, 20_000, 200);
  });
});

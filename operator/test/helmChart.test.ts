import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { startOperator } from '../src/index.js';
import { CRD_FILE, Cluster, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CHART = `${REPO}helm/llmtor`;

/** helm from the cache (helm/install-helm.sh builds it with `go install` on first use). */
async function helmBinary(): Promise<string | { skip: string }> {
  try {
    const { stdout } = await run('bash', [`${REPO}helm/install-helm.sh`], { timeout: 900_000, maxBuffer: 1 << 24 });
    return stdout.trim().split('\n').at(-1)!;
  } catch (e) {
    return { skip: `helm could not be installed (go install helm.sh/helm/v3/cmd/helm): ${(e as Error).message.split('\n').slice(0, 3).join(' ')}` };
  }
}

function docs(yaml: string): string[] {
  return yaml.split(/^---\s*$/m).map((d) => d.trim()).filter((d) => /^kind:/m.test(d));
}

describe('Helm chart helm/llmtor', function () {
  this.timeout(120_000);
  let helm: string;
  let env: KubeTestEnv;

  before(async function () {
    this.timeout(1_200_000);
    const h = await helmBinary();
    if (typeof h !== 'string') {
      console.log(`      SKIPPED: ${h.skip}`);
      this.skip();
    }
    helm = h as string;
    env = await kubeEnv();
  });

  const template = async (ns: string, values: string[] = []) => (await run(helm, ['template', 'llmtor', CHART, '--namespace', ns, '--include-crds', '--kube-version', env.kubeVersion, ...values.flatMap((v) => ['--set', v])], { maxBuffer: 1 << 24 })).stdout;

  it('passes helm lint (defaults, Key Vault, Tor sidecar)', async () => {
    for (const values of [[], ['tokenIssuer.spec.keyProtection.azureKeyVault.vaultUrl=https://v.vault.azure.net', 'tokenIssuer.spec.keyProtection.azureKeyVault.keyName=kek'], ['tor.enabled=true', 'tor.hiddenServiceSecret=onion', 'redis.issuanceUrl=redis://r:6379/0', 'redis.redemptionUrl=redis://r:6379/1']]) {
      const { stdout } = await run(helm, ['lint', '--strict', CHART, ...values.flatMap((v) => ['--set', v])]);
      assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('ships the same CRD as crds/', () => {
    assert.equal(readFileSync(`${CHART}/crds/tokenissuers.llmtor.dev.yaml`, 'utf8'), readFileSync(CRD_FILE, 'utf8'));
  });

  it('renders manifests the API server accepts (server-side dry run of CRD, RBAC, Deployments, TokenIssuer)', async () => {
    const ns = await newNamespace(env, 'helm');
    for (const values of [[], ['tor.enabled=true', 'tor.hiddenServiceSecret=onion', 'redis.issuanceUrl=redis://r:6379/0', 'redis.redemptionUrl=redis://r:6379/1']]) {
      const out = await template(ns, values);
      const kinds = docs(out).map((d) => /^kind:\s*(\S+)/m.exec(d)![1]);
      for (const k of ['CustomResourceDefinition', 'ServiceAccount', 'Role', 'RoleBinding', 'Deployment', 'Service', 'TokenIssuer']) assert.ok(kinds.includes(k), `renders a ${k}`);
      assert.equal(docs(out).filter((d) => /^kind: Deployment/m.test(d)).length, 3, 'operator, issuance and redemption Deployments');
      const r = await env.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: out });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /role.rbac.authorization.k8s.io\/llmtor-operator (created|configured) \(server dry run\)/);
      assert.match(r.stdout, /customresourcedefinition.apiextensions.k8s.io\/tokenissuers.llmtor.dev (created|configured|unchanged) \(server dry run\)/);
    }
  });

  it('the chart\'s Role is all the operator needs: an operator with only that ServiceAccount\'s token gets the issuer Ready', async () => {
    const ns = await newNamespace(env, 'rbac');
    const out = await template(ns);
    const rbac = docs(out).filter((d) => /^kind: (ServiceAccount|Role|RoleBinding)$/m.test(d) && /llmtor-operator/.test(d)).join('\n---\n');
    let r = await env.kubectl(['apply', '-n', ns, '-f', '-'], { input: rbac });
    assert.equal(r.code, 0, r.stderr);
    const issuer = docs(out).find((d) => /^kind: TokenIssuer/m.test(d))!;
    r = await env.kubectl(['apply', '-n', ns, '-f', '-'], { input: issuer });
    assert.equal(r.code, 0, r.stderr);
    r = await env.kubectl(['create', 'token', 'llmtor-operator', '-n', ns, '--duration=10m']);
    assert.equal(r.code, 0, r.stderr);
    const kc = new KubeConfig();
    kc.loadFromOptions({ ...env.kubeConfigOptionsFor(r.stdout.trim()), contexts: [{ name: 'sa', cluster: env.kubeConfigOptions.clusters[0]!.name, user: 'token-user', namespace: ns }], currentContext: 'sa' });
    const op = await startOperator({ kc, namespace: ns, identity: 'rbac-test', resyncMs: 1_000, lease: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 250 } });
    try {
      const cluster = new Cluster(kubeConfig(env));
      const st = await waitFor('Ready with the Role only', async () => {
        const s = (await cluster.issuer(ns, 'main')).status;
        return s?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True') ? s : undefined;
      }, 30_000);
      assert.equal(st.keys!.length, 3);
      assert.ok((await cluster.events(ns)).some((e) => e.reason === 'KeyPublished'), 'events are allowed');
      // and the Role does not let it read Secrets elsewhere
      r = await env.kubectl(['auth', 'can-i', 'get', 'secrets', '-n', 'default', `--as=system:serviceaccount:${ns}:llmtor-operator`]);
      assert.equal(r.stdout.trim(), 'no');
    } finally {
      await op.stop();
    }
  });
});

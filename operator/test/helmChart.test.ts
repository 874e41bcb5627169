import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig, loadAllYaml, type V1Deployment, type V1EnvVar, type V1Secret } from '@kubernetes/client-node';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { loadConfig, redemptionConfigSchema, redemptionSection } from '@llmtor/proxy';
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

  const template = async (ns: string, values: string[] = [], valuesFiles: string[] = []) => (await run(helm, ['template', 'llmtor', CHART, '--namespace', ns, '--include-crds', '--kube-version', env.kubeVersion, ...values.flatMap((v) => ['--set', v]), ...valuesFiles.flatMap((f) => ['--values', f])], { maxBuffer: 1 << 24 })).stdout;

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

  it('mounts proxy.config as the proxy\'s JSON file (Secret, LLMTOR_CONFIG_FILE, checksum) and renders Redis Sentinel/Cluster/TLS env the proxy\'s loader accepts', async () => {
    const ns = await newNamespace(env, 'helmcfg');
    const proxyConfig = {
      redemption: {
        models: [{ id: 'gpt-4o-mini', provider: 'openai', priceCredits: 1, maxOutputTokens: 4096 }],
        providers: { openai: { baseUrl: 'https://api.openai.com/v1', apiKeys: ['sk-test-1', 'sk-test-2'], transform: { maxTokensField: 'max_completion_tokens', streamUsage: true } } },
        moderation: { provider: 'local' },
      },
    };
    const values = {
      proxy: { config: proxyConfig, existingSecret: 'llmtor-proxy-secrets' },
      redis: {
        issuance: { sentinels: ['redis-node-0.redis-headless:26379', 'redis-node-1.redis-headless:26379'], sentinelName: 'mymaster', db: 0, passwordSecret: { name: 'redis-auth' }, sentinelPasswordSecret: { name: 'redis-auth', key: 'sentinel' } },
        redemption: { clusterNodes: ['spent-0.spent:6379', 'spent-1.spent:6379'], tls: true, tlsCa: { secret: 'redis-ca', key: 'ca.crt' }, passwordSecret: { name: 'redis-auth' } },
      },
    };
    const dir = mkdtempSync(join(tmpdir(), 'llmtor-helm-'));
    try {
      const valuesFile = join(dir, 'values.json');
      writeFileSync(valuesFile, JSON.stringify(values)); // JSON is YAML
      const out = await template(ns, [], [valuesFile]);
      const objs = JSON.parse(JSON.stringify(loadAllYaml(out))) as { kind?: string; metadata?: { name?: string } }[]; // plain objects, not client classes

      const secret = objs.find((o) => o.kind === 'Secret' && o.metadata?.name === 'llmtor-proxy-config') as V1Secret | undefined;
      assert.ok(secret, 'renders the config Secret');
      const json = Buffer.from(secret.data!['proxy.json']!, 'base64').toString('utf8');
      assert.deepEqual(JSON.parse(json), proxyConfig);

      const deployments = new Map((objs.filter((o) => o.kind === 'Deployment') as V1Deployment[]).map((d) => [d.metadata!.name!, d]));
      const checksums = new Set<string>();
      const envOf = new Map<string, V1EnvVar[]>();
      for (const role of ['issuance', 'redemption']) {
        const d = deployments.get(`llmtor-${role}`)!;
        const pod = d.spec!.template;
        const proxy = pod.spec!.containers.find((c) => c.name === 'proxy')!;
        const envs = proxy.env!;
        envOf.set(role, envs);
        assert.equal(envs.find((e) => e.name === 'LLMTOR_CONFIG_FILE')?.value, '/etc/llmtor/config/proxy.json', role);
        const mount = proxy.volumeMounts!.find((m) => m.name === 'config');
        assert.deepEqual({ path: mount?.mountPath, ro: mount?.readOnly }, { path: '/etc/llmtor/config', ro: true }, role);
        const vol = pod.spec!.volumes!.find((v) => v.name === 'config');
        assert.equal(vol?.secret?.secretName, 'llmtor-proxy-config', role);
        assert.deepEqual(vol?.secret?.items, [{ key: 'proxy.json', path: 'proxy.json' }], role);
        const sum = pod.metadata!.annotations?.['checksum/config'];
        assert.match(sum ?? '', /^[0-9a-f]{64}$/, `${role}: checksum annotation`);
        checksums.add(sum!);
        assert.ok(!envs.some((e) => /_REDIS_URL$/.test(e.name)), `${role}: no URL next to Sentinel/Cluster`);
      }
      assert.equal(checksums.size, 1, 'the same checksum on both Deployments');

      const plain = (role: string) => Object.fromEntries(envOf.get(role)!.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
      const fromSecret = (role: string, name: string) => envOf.get(role)!.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
      assert.equal(plain('issuance').ISSUANCE_REDIS_SENTINELS, 'redis-node-0.redis-headless:26379,redis-node-1.redis-headless:26379');
      assert.equal(plain('issuance').ISSUANCE_REDIS_SENTINEL_NAME, 'mymaster');
      assert.equal(plain('issuance').ISSUANCE_REDIS_DB, '0');
      assert.deepEqual(fromSecret('issuance', 'ISSUANCE_REDIS_PASSWORD'), { name: 'redis-auth', key: 'password' });
      assert.deepEqual(fromSecret('issuance', 'ISSUANCE_REDIS_SENTINEL_PASSWORD'), { name: 'redis-auth', key: 'sentinel' });
      assert.equal(plain('redemption').REDEMPTION_REDIS_CLUSTER_NODES, 'spent-0.spent:6379,spent-1.spent:6379');
      assert.equal(plain('redemption').REDEMPTION_REDIS_TLS, 'true');
      assert.equal(plain('redemption').REDEMPTION_REDIS_TLS_CA_FILE, '/etc/llmtor/redis-ca/ca.crt');
      assert.ok(!Object.keys(plain('redemption')).some((n) => n.startsWith('ISSUANCE_')), 'redemption pods get no issuance Redis settings');
      const redemption = deployments.get('llmtor-redemption')!.spec!.template.spec!;
      assert.equal(redemption.volumes!.find((v) => v.name === 'redis-ca')?.secret?.secretName, 'redis-ca');
      assert.ok(redemption.containers[0]!.volumeMounts!.some((m) => m.name === 'redis-ca' && m.mountPath === '/etc/llmtor/redis-ca'));

      // A config change changes the checksum (rolls the pods).
      const changed = join(dir, 'changed.json');
      writeFileSync(changed, JSON.stringify({ proxy: { config: { ...proxyConfig, logLevel: 'debug' } } }));
      assert.ok(!(await template(ns, [], [valuesFile, changed])).includes(`checksum/config: ${[...checksums][0]}`));

      // The API server accepts it.
      const r = await env.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: out });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /secret\/llmtor-proxy-config created \(server dry run\)/);

      // The proxy's own loader, fed the pod's env (Secret values stand in) and the mounted files, finds no problem.
      const files = (p: string) => join(dir, 'root', p);
      for (const [p, content] of [['/etc/llmtor/config/proxy.json', json], ['/etc/llmtor/redis-ca/ca.crt', '-----BEGIN CERTIFICATE-----\n']] as const) {
        mkdirSync(dirname(files(p)), { recursive: true });
        writeFileSync(files(p), content);
      }
      const podEnv = (role: string): NodeJS.ProcessEnv => ({
        LLMTOR_ACCOUNT_PEPPER: 'p'.repeat(64), // from proxy.existingSecret (envFrom)
        ...Object.fromEntries(envOf.get(role)!.map((e) => [e.name, e.value === undefined ? 'secret-from-kubernetes' : e.value.startsWith('/etc/llmtor/') ? files(e.value) : e.value])),
      });
      const issuance = loadConfig({ env: podEnv('issuance') });
      assert.deepEqual(issuance.roles, ['issuance']);
      assert.deepEqual(issuance.redis.issuance, { sentinels: [{ host: 'redis-node-0.redis-headless', port: 26379 }, { host: 'redis-node-1.redis-headless', port: 26379 }], sentinelName: 'mymaster', db: 0, password: 'secret-from-kubernetes', sentinelPassword: 'secret-from-kubernetes', tls: false });
      const red = loadConfig({ env: podEnv('redemption') });
      assert.deepEqual(red.roles, ['redemption']);
      assert.deepEqual(red.redis.redemption, { clusterNodes: [{ host: 'spent-0.spent', port: 6379 }, { host: 'spent-1.spent', port: 6379 }], tls: true, tlsCaFile: files('/etc/llmtor/redis-ca/ca.crt'), password: 'secret-from-kubernetes' });
      const section = redemptionConfigSchema.safeParse(redemptionSection(red));
      assert.ok(section.success, JSON.stringify(section.error?.issues));
      assert.deepEqual(section.data.models.map((m: { id: string; provider: string }) => [m.id, m.provider]), [['gpt-4o-mini', 'openai']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
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

import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KubeConfig, loadAllYaml, type V1Deployment, type V1EnvVar, type V1Secret } from '@kubernetes/client-node';
import type { KubeTestEnv } from '@llmtor/devtools/kubeTestEnv';
import { freePort } from '@llmtor/devtools/ports';
import { DirectoryKeySource, loadConfig, redemptionConfigSchema, redemptionSection, startProxy } from '@llmtor/proxy';
import { startOperator } from '../src/index.js';
import { CRD_FILE, Cluster, kubeConfig, kubeEnv, newNamespace, waitFor } from './support/cluster.js';
import { writeAtomically } from './support/secretMirror.js';

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

const REDIS = ['redis.issuanceUrl=redis://r:6379/0', 'redis.redemptionUrl=redis://r:6379/1'];

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

  // --skip-tests: the test hook Pod needs the namespace's default ServiceAccount, which only a controller-manager makes.
  const template = async (ns: string, values: string[] = [], valuesFiles: string[] = []) => (await run(helm, ['template', 'llmtor', CHART, '--namespace', ns, '--include-crds', '--skip-tests', '--kube-version', env.kubeVersion, ...values.flatMap((v) => ['--set', v]), ...valuesFiles.flatMap((f) => ['--values', f])], { maxBuffer: 1 << 24 })).stdout;

  it('passes helm lint (defaults, Key Vault, Tor sidecar)', async () => {
    for (const values of [[...REDIS], ['redis.bundled.enabled=true', 'tokenIssuer.spec.keyProtection.azureKeyVault.vaultUrl=https://v.vault.azure.net', 'tokenIssuer.spec.keyProtection.azureKeyVault.keyName=kek'], ['tor.enabled=true', 'tor.hiddenServiceSecret=onion', ...REDIS]]) {
      const { stdout } = await run(helm, ['lint', '--strict', CHART, ...values.flatMap((v) => ['--set', v])]);
      assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  it('ships the same CRD as crds/', () => {
    assert.equal(readFileSync(`${CHART}/crds/tokenissuers.llmtor.dev.yaml`, 'utf8'), readFileSync(CRD_FILE, 'utf8'));
  });

  it('renders manifests the API server accepts (server-side dry run of CRD, RBAC, Deployments, TokenIssuer)', async () => {
    const ns = await newNamespace(env, 'helm');
    for (const values of [[...REDIS], ['tor.enabled=true', 'tor.hiddenServiceSecret=onion', 'redis.bundled.enabled=true']]) {
      const out = await template(ns, values);
      const kinds = docs(out).map((d) => /^kind:\s*(\S+)/m.exec(d)![1]);
      for (const k of ['CustomResourceDefinition', 'ServiceAccount', 'Role', 'RoleBinding', 'Deployment', 'Service', 'TokenIssuer']) assert.ok(kinds.includes(k), `renders a ${k}`);
      const names = (kind: string) => docs(out).filter((d) => new RegExp(`^kind: ${kind}$`, 'm').test(d)).map((d) => /^ {2}name: (\S+)/m.exec(d)![1]).sort();
      if (values.includes('tor.enabled=true')) {
        assert.deepEqual(names('Deployment'), ['llmtor-issuance', 'llmtor-onionbalance', 'llmtor-operator'], 'operator, issuance and Onionbalance Deployments');
        assert.deepEqual(names('StatefulSet'), ['llmtor-redemption', 'llmtor-redis-issuance', 'llmtor-redis-redemption'], 'redemption (stable pod names: stable backend onions) and two Redis');
      } else {
        assert.deepEqual(names('Deployment'), ['llmtor-issuance', 'llmtor-operator', 'llmtor-redemption'], 'operator, issuance and redemption Deployments');
      }
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
        if (role === 'issuance') {
          // The file has only a redemption section (upstream API keys): issuance gets no file at all.
          assert.equal(envs.find((e) => e.name === 'LLMTOR_CONFIG_FILE'), undefined);
          assert.equal(pod.spec!.volumes!.find((v) => v.name === 'config'), undefined);
          assert.equal(pod.metadata!.annotations?.['checksum/config'], undefined);
          assert.ok(!objs.some((o) => o.metadata?.name === 'llmtor-issuance-config'));
          assert.ok(!envs.some((e) => /_REDIS_URL$/.test(e.name)), `${role}: no URL next to Sentinel/Cluster`);
          continue;
        }
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
      assert.equal(checksums.size, 1);

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
    const out = await template(ns, REDIS);
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
      // What a redemption pod mounts (the chart's volume: keys.json of the operator's ConfigMap) loads as the
      // public keys of every key file in the Secret, through the proxy's own loader.
      const vol = (JSON.parse(JSON.stringify(loadAllYaml(out))) as { kind?: string; metadata?: { name?: string }; spec?: any }[]) // eslint-disable-line @typescript-eslint/no-explicit-any
        .find((o) => o.kind === 'Deployment' && o.metadata?.name === 'llmtor-redemption')!.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'keys');
      const cm = JSON.parse((await env.kubectl(['get', 'configmap', vol.configMap.name, '-n', ns, '-o', 'json'])).stdout) as { data: Record<string, string> };
      const secret = JSON.parse((await env.kubectl(['get', 'secret', 'main-signing-keys', '-n', ns, '-o', 'json'])).stdout) as { data: Record<string, string> };
      const pub = mkdtempSync(join(tmpdir(), 'llmtor-pubkeys-'));
      try {
        for (const it of vol.configMap.items as { key: string; path: string }[]) writeFileSync(join(pub, it.path), cm.data[it.key]!);
        const loaded = await new DirectoryKeySource(pub, { openPrivateKeys: false }).load();
        assert.deepEqual(loaded.problems, []);
        assert.deepEqual(loaded.entries.map((e) => `${e.meta.keyId}.json`).sort(), Object.keys(secret.data).sort());
      } finally {
        rmSync(pub, { recursive: true, force: true });
      }
      // and the Role does not let it read Secrets elsewhere
      r = await env.kubectl(['auth', 'can-i', 'get', 'secrets', '-n', 'default', `--as=system:serviceaccount:${ns}:llmtor-operator`]);
      assert.equal(r.stdout.trim(), 'no');
    } finally {
      await op.stop();
    }
  });

  it('refuses to install without Redis, saying what to set (a pod-local store would let a token be spent once per pod)', async () => {
    for (const [values, role] of [[[], 'issuance'], [['redis.issuance.sentinels={s:26379}', 'redis.issuance.sentinelName=m'], 'redemption']] as const) {
      const r = await run(helm, ['template', 'llmtor', CHART, '--kube-version', env.kubeVersion, ...values.flatMap((v) => ['--set', v])]).then(() => undefined, (e: { stderr: string }) => e.stderr);
      assert.ok(r, `helm template ${values.join(' ')} must fail`);
      assert.match(r, new RegExp(`needs Redis for its ${role} pods`));
      for (const hint of ['redis.bundled.enabled=true', 'redis.issuanceUrl=', 'redis.existingSecret=', `redis.${role}.sentinels`]) assert.ok(r.includes(hint), `names ${hint}`);
    }
  });

  it('bundled Redis: two StatefulSets (accounts, spent tokens), AOF with appendfsync always, one generated password in the config and the URLs, kept on upgrade', async () => {
    const ns = await newNamespace(env, 'helmredis');
    const out = await template(ns, ['redis.bundled.enabled=true']);
    const objs = JSON.parse(JSON.stringify(loadAllYaml(out))) as Array<{ kind?: string; metadata?: { name?: string }; stringData?: Record<string, string>; spec?: Record<string, unknown> }>;
    const sts = objs.filter((o) => o.kind === 'StatefulSet').map((o) => o.metadata!.name).sort();
    assert.deepEqual(sts, ['llmtor-redis-issuance', 'llmtor-redis-redemption']);
    const conf = objs.find((o) => o.metadata?.name === 'llmtor-redis-auth')!.stringData!['redis.conf']!;
    assert.match(conf, /^appendonly yes$/m);
    assert.match(conf, /^appendfsync always$/m);
    const pw = /^requirepass (\S{40})$/m.exec(conf)![1]!;
    const urls = objs.find((o) => o.metadata?.name === 'llmtor-redis')!.stringData!;
    assert.equal(urls.ISSUANCE_REDIS_URL, `redis://:${pw}@llmtor-redis-issuance:6379/0`);
    assert.equal(urls.REDEMPTION_REDIS_URL, `redis://:${pw}@llmtor-redis-redemption:6379/0`);
    // The real redis-server accepts the rendered file (password and AOF settings), and a write is in the AOF before the reply.
    // The real redis-server accepts the rendered file, and a write is in the AOF before the reply.
    const dir = mkdtempSync(join(tmpdir(), 'llmtor-redisconf-'));
    const port = await freePort();
    writeFileSync(join(dir, 'redis.conf'), conf.replace(/^dir \/data$/m, `dir ${dir}`).replace(/^port 6379$/m, `port ${port}`).replace(/^bind .*$/m, 'bind 127.0.0.1'));
    const child = spawn('redis-server', [join(dir, 'redis.conf')], { stdio: 'ignore' });
    const cli = (...args: string[]) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning', ...args]).then((r) => r.stdout.trim());
    try {
      await waitFor('redis-server up', () => cli('-a', pw, 'PING').then((r) => r === 'PONG', () => false), 5_000);
      assert.equal(await cli('-a', pw, 'CONFIG', 'GET', 'appendfsync'), 'appendfsync\nalways');
      assert.match(await cli('PING'), /NOAUTH/, 'a password is required');
      assert.equal(await cli('-a', pw, 'SET', 'spent-marker', 'x'), 'OK');
      const aof = readdirSync(join(dir, 'appendonlydir')).find((f) => f.endsWith('.incr.aof'))!;
      assert.ok(readFileSync(join(dir, 'appendonlydir', aof), 'utf8').includes('spent-marker'), 'the write is in the AOF on return');
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
    const r = await env.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: out });
    assert.equal(r.code, 0, r.stderr);

    // A real install and upgrade (objects only; no kubelet here): the password and the onion seed are kept.
    const h = (...args: string[]) => run(helm, [...args, '--kubeconfig', env.kubeconfigPath, '--namespace', ns, '--set', 'redis.bundled.enabled=true', '--set', 'tor.enabled=true', '--set', 'tor.hiddenServiceSecret=front', '--set', 'tokenIssuer.create=false', '--skip-crds'], { maxBuffer: 1 << 24 });
    const secrets = async () => {
      const get = async (name: string, key: string) => JSON.parse((await env.kubectl(['get', 'secret', name, '-n', ns, '-o', 'json'])).stdout).data[key] as string;
      return [await get('llmtor-redis-auth', 'password'), await get('llmtor-onion-backend-seed', 'seed')];
    };
    await h('install', 'llmtor', CHART);
    const first = await secrets();
    await h('upgrade', 'llmtor', CHART, '--set', 'proxy.logLevel=debug');
    assert.deepEqual(await secrets(), first, 'upgrade keeps the generated password and seed');
  });

  it('NOTES.txt says how to reach issuance, read the onion address and rotate the keys', async () => {
    const ns = await newNamespace(env, 'notes');
    const { stdout } = await run(helm, ['install', 'llmtor', CHART, '--dry-run=server', '--kubeconfig', env.kubeconfigPath, '--namespace', ns, '--set', 'redis.bundled.enabled=true', '--set', 'tor.enabled=true', '--set', 'tor.hiddenServiceSecret=front-key'], { maxBuffer: 1 << 24 });
    const notes = stdout.slice(stdout.indexOf('NOTES:'));
    assert.match(notes, /port-forward svc\/llmtor-issuance/);
    assert.match(notes, /get secret front-key -o jsonpath='\{\.data\.hostname\}' \| base64 -d/);
    assert.match(notes, /annotate tokenissuer main llmtor\.dev\/rotate=now --overwrite/);
    assert.match(notes, /helm uninstall keeps the TokenIssuer main and its signing keys/);
    assert.doesNotMatch(notes, /DEPRECATED|WARNING/);
    const old = (await run(helm, ['install', 'llmtor', CHART, '--dry-run=server', '--kubeconfig', env.kubeconfigPath, '--namespace', ns, '--set', [...REDIS, 'proxy.existingSecret=shared', 'tokenIssuer.spec.keyProtection.azureKeyVault.vaultUrl=https://v.vault.azure.net', 'tokenIssuer.spec.keyProtection.azureKeyVault.keyName=kek'].join(',')], { maxBuffer: 1 << 24 })).stdout;
    assert.match(old, /DEPRECATED: proxy.existingSecret, .* now apply to the\nissuance pods only/);
    assert.match(old, /WARNING: Key Vault is configured but networkPolicy.issuance.httpsCidrs is empty/);
  });

  it('onion front with kubelet-made volumes: the init containers, run as the pod\'s uid on a root-owned 2777 emptyDir, give tor a HiddenServiceDir it accepts, and each pod\'s backend address is the one Onionbalance lists', async function () {
    if (process.getuid?.() !== 0) {
      console.log('      SKIPPED: needs root to reproduce the kubelet\'s volume ownership (chown, setpriv)');
      this.skip();
    }
    this.timeout(60_000);
    const out = await template('onion', ['redis.bundled.enabled=true', 'tor.enabled=true', 'tor.hiddenServiceSecret=front-key', 'proxy.redemption.replicas=2']);
    const objs = JSON.parse(JSON.stringify(loadAllYaml(out))) as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const byName = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata?.name === name)!;
    const redemption = byName('StatefulSet', 'llmtor-redemption');
    const onionbalance = byName('Deployment', 'llmtor-onionbalance');
    const uid = redemption.spec.template.spec.securityContext.runAsUser as number;
    const fsGroup = redemption.spec.template.spec.securityContext.fsGroup as number;
    const root = mkdtempSync(join(tmpdir(), 'llmtor-kubelet-'));
    chmodSync(root, 0o755);
    const front = join(root, 'front');
    const frontAddress = execFileSync(process.execPath, [`${CHART}/files/onion-keys.mjs`, 'frontend', front], { encoding: 'utf8' }).trim();
    const secretData: Record<string, Record<string, Buffer>> = {
      'front-key': { hostname: readFileSync(join(front, 'hostname')), hs_ed25519_secret_key: readFileSync(join(front, 'hs_ed25519_secret_key')) },
      'llmtor-onion-backend-seed': { seed: Buffer.from(byName('Secret', 'llmtor-onion-backend-seed').data.seed, 'base64') },
    };
    try {
      // Volumes as the kubelet makes them: emptyDir root:fsGroup 2777; Secret/ConfigMap files
      // root:fsGroup, group-readable, behind the ..data symlinks of an atomic writer.
      const makeVolumes = async (pod: Record<string, any>, podName: string) => { // eslint-disable-line @typescript-eslint/no-explicit-any
        const dirs = new Map<string, string>();
        for (const v of pod.spec.volumes) {
          const d = join(root, podName, v.name);
          mkdirSync(d, { recursive: true });
          if (v.emptyDir) {
            execFileSync('chown', [`0:${fsGroup}`, d]);
            execFileSync('chmod', ['2777', d]);
          } else {
            // Volumes the proxy container alone mounts (signing keys, the operator's directory ConfigMap, …) are not needed here.
            if (v.secret && !secretData[v.secret.secretName]) continue;
            if (v.configMap && !byName('ConfigMap', v.configMap.name)) continue;
            const data: Record<string, Buffer> = v.secret ? secretData[v.secret.secretName]! : Object.fromEntries(Object.entries(byName('ConfigMap', v.configMap.name).data as Record<string, string>).map(([k, x]) => [k, Buffer.from(x)]));
            const items: Array<{ key: string; path: string }> = (v.secret ?? v.configMap).items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
            await writeAtomically(d, Object.fromEntries(items.map((it) => [it.path, data[it.key]!])), 0o440);
            execFileSync('chown', ['-R', `0:${fsGroup}`, d]);
            execFileSync('find', [d, '-type', 'd', '-exec', 'chmod', '0755', '{}', '+']); // the kubelet's directories are 0755
          }
          dirs.set(v.name, d);
        }
        return dirs;
      };
      const mapPaths = (c: Record<string, any>, dirs: Map<string, string>, text: string) => { // eslint-disable-line @typescript-eslint/no-explicit-any
        // Whole path segments only (/etc/llmtor/onion is not a prefix of /etc/llmtor/onion-frontend).
        for (const m of [...c.volumeMounts].sort((a, b) => b.mountPath.length - a.mountPath.length)) text = text.replace(new RegExp(`${m.mountPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/|$|\\s)`, 'gm'), dirs.get(m.name)!);
        return text;
      };
      const runAs = (c: Record<string, any>, dirs: Map<string, string>, env: Record<string, string>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
        const argv = (c.command as string[]).map((a) => mapPaths(c, dirs, a.replace(/\$\((\w+)\)/g, (_m, n: string) => env[n]!)));
        assert.equal(argv[0], 'node');
        return execFileSync('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--groups', String(fsGroup), process.execPath, ...argv.slice(1)], { encoding: 'utf8' });
      };

      // Onionbalance's init container: its config lists the backends.
      const obDirs = await makeVolumes(onionbalance.spec.template, 'onionbalance');
      runAs(onionbalance.spec.template.spec.initContainers[0], obDirs, {});
      const obConfig = JSON.parse(readFileSync(join(obDirs.get('onionbalance-config')!, 'config.yaml'), 'utf8')) as { services: Array<{ key: string; instances: Array<{ address: string }> }> };
      assert.equal(obConfig.services[0]!.key, '/etc/llmtor/onion-frontend/hs_ed25519_secret_key');
      const listed = obConfig.services[0]!.instances.map((i) => i.address);
      assert.equal(listed.length, 2);

      for (const [i, podName] of ['llmtor-redemption-0', 'llmtor-redemption-1'].entries()) {
        const dirs = await makeVolumes(redemption.spec.template, podName);
        const podSpec = redemption.spec.template.spec;
        runAs(podSpec.initContainers.find((c: { name: string }) => c.name === 'onion-key'), dirs, { POD_NAME: podName });
        const tor = podSpec.containers.find((c: { name: string }) => c.name === 'tor');
        const torrc = mapPaths(tor, dirs, readFileSync(join(dirs.get('torrc')!, 'torrc'), 'utf8')) + '\nDisableNetwork 1\nGeoIPFile ""\nGeoIPv6File ""\nLog notice stdout\n';
        const torrcFile = join(root, podName, 'torrc.effective');
        writeFileSync(torrcFile, torrc, { mode: 0o644 });
        const hsDir = /^HiddenServiceDir (\S+)$/m.exec(torrc)![1]!;
        // Real tor, as the pod's uid, until it has written the hostname (or refused the directory).
        const child = spawn('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--groups', String(fsGroup), 'tor', '--defaults-torrc', join(dirs.get('torrc')!, 'torrc-defaults'), '-f', torrcFile], { cwd: root });
        let log = '';
        child.stdout.on('data', (d: Buffer) => (log += d.toString()));
        try {
          const hostname = await waitFor(`tor of ${podName} writes its hostname`, async () => {
            if (child.exitCode !== null) throw new Error(`tor exited: ${log}`);
            try {
              return readFileSync(join(hsDir, 'hostname'), 'utf8').trim();
            } catch {
              return undefined;
            }
          }, 20_000, 100);
          assert.equal(hostname, listed[i], `${podName}'s backend address is the one Onionbalance lists`);
          assert.equal(readFileSync(join(hsDir, 'ob_config'), 'utf8').trim(), `MasterOnionAddress ${frontAddress}`);
          assert.doesNotMatch(log, /not owned by this user|Permission denied/);
        } finally {
          child.kill('SIGKILL');
        }
      }
      assert.notEqual(listed[0], listed[1], 'one backend address per pod');
      assert.ok(!listed.includes(frontAddress));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  type Obj = { kind?: string; metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  const objects = async (ns: string, values: string[], release = 'llmtor'): Promise<Obj[]> => {
    const out = (await run(helm, ['template', release, CHART, '--namespace', ns, '--skip-tests', ...values.flatMap((v) => ['--set', v])], { maxBuffer: 1 << 24 })).stdout;
    return JSON.parse(JSON.stringify(loadAllYaml(out))) as Obj[];
  };
  const find = (objs: Obj[], kind: string, name: string) => {
    const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
    assert.ok(o, `renders ${kind} ${name}`);
    return o;
  };

  it('keeps the roles apart: per-role ServiceAccounts, labels and Secrets; redemption pods get only the public directory; issuance pods no upstream API keys', async () => {
    const values = [
      'redis.bundled.enabled=true',
      'tokenIssuer.spec.keyProtection.azureKeyVault.vaultUrl=https://v.vault.azure.net', 'tokenIssuer.spec.keyProtection.azureKeyVault.keyName=kek',
      'proxy.issuance.serviceAccount.annotations.azure\\.workload\\.identity/client-id=cid',
      'proxy.issuance.podLabels.azure\\.workload\\.identity/use=true',
      'proxy.issuance.existingSecret=issuance-secrets',
      'proxy.redemption.podLabels.side=anonymous',
      'proxy.redemption.existingSecret=redemption-env',
      'proxy.config.redemption.providers.openai.apiKeys[0]=sk-upstream',
    ];
    const objs = await objects('roles', values);
    const pod = (role: string) => find(objs, 'Deployment', `llmtor-${role}`).spec.template;
    const iss = pod('issuance');
    const red = pod('redemption');
    assert.equal(iss.spec.serviceAccountName, 'llmtor-issuance');
    assert.equal(red.spec.serviceAccountName, 'llmtor-redemption');
    assert.equal(find(objs, 'ServiceAccount', 'llmtor-issuance').metadata!.annotations?.['azure.workload.identity/client-id'], 'cid');
    assert.equal(find(objs, 'ServiceAccount', 'llmtor-redemption').metadata!.annotations, undefined, 'no workload identity for redemption');
    assert.equal(iss.metadata.labels['azure.workload.identity/use'], 'true');
    assert.equal(red.metadata.labels['azure.workload.identity/use'], undefined);
    assert.equal(red.metadata.labels.side, 'anonymous');
    const proxy = (p: any) => p.spec.containers.find((c: { name: string }) => c.name === 'proxy'); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(proxy(iss).envFrom, [{ secretRef: { name: 'issuance-secrets' } }]);
    assert.deepEqual(proxy(red).envFrom, [{ secretRef: { name: 'redemption-env' } }]);
    // Every Secret a pod can read: volumes, envFrom, env valueFrom.
    const secretsOf = (p: any): string[] => [ // eslint-disable-line @typescript-eslint/no-explicit-any
      ...p.spec.volumes.filter((v: any) => v.secret).map((v: any) => v.secret.secretName), // eslint-disable-line @typescript-eslint/no-explicit-any
      ...p.spec.containers.flatMap((c: any) => [...(c.envFrom ?? []).map((e: any) => e.secretRef?.name), ...(c.env ?? []).map((e: any) => e.valueFrom?.secretKeyRef?.name)]), // eslint-disable-line @typescript-eslint/no-explicit-any
    ].filter(Boolean).sort();
    assert.deepEqual([...new Set(secretsOf(red))], ['llmtor-proxy-config', 'llmtor-redis', 'redemption-env'], 'redemption: no signing keys, KEK, pepper/Stripe/admin Secret');
    assert.ok(!secretsOf(iss).includes('llmtor-proxy-config'), 'issuance does not mount the file with upstream API keys');
    assert.ok(secretsOf(iss).includes('main-signing-keys'));
    assert.deepEqual(red.spec.volumes.find((v: { name: string }) => v.name === 'keys').configMap, { name: 'main-directory', items: [{ key: 'keys.json', path: 'keys.json' }] });
    assert.equal(proxy(red).env.find((e: { name: string }) => e.name === 'LLMTOR_KEYVAULT_URL'), undefined);
    assert.equal(proxy(iss).env.find((e: { name: string }) => e.name === 'LLMTOR_KEYVAULT_URL').value, 'https://v.vault.azure.net');
    const holders = (objs.filter((o) => o.kind === 'Secret') as V1Secret[]).filter((x) => Object.values(x.data ?? {}).some((v) => Buffer.from(v, 'base64').toString('utf8').includes('sk-upstream'))).map((x) => x.metadata!.name);
    assert.deepEqual(holders, ['llmtor-proxy-config'], 'the upstream API key is only in the redemption pods\' file');
    // The Redis URL Secret: each role reads only its own key.
    const redisKeys = (p: any) => p.spec.containers.flatMap((c: any) => (c.env ?? []).map((e: any) => e.valueFrom?.secretKeyRef?.key)).filter(Boolean); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(redisKeys(red), ['REDEMPTION_REDIS_URL']);
    assert.deepEqual(redisKeys(iss), ['ISSUANCE_REDIS_URL']);

    // The shared keys of the previous release still work, for issuance only.
    const old = await objects('roles', [...REDIS, 'proxy.existingSecret=old-shared', 'proxy.podLabels.wi=yes', 'proxy.serviceAccount.annotations.a=b']);
    assert.deepEqual(proxy(find(old, 'Deployment', 'llmtor-issuance').spec.template).envFrom, [{ secretRef: { name: 'old-shared' } }]);
    assert.equal(proxy(find(old, 'Deployment', 'llmtor-redemption').spec.template).envFrom, undefined);
    assert.equal(find(old, 'Deployment', 'llmtor-redemption').spec.template.metadata.labels.wi, undefined);
    assert.equal(find(old, 'ServiceAccount', 'llmtor-issuance').metadata!.annotations?.a, 'b');
    assert.equal(find(old, 'ServiceAccount', 'llmtor-redemption').metadata!.annotations, undefined);
  });

  it('renders a NetworkPolicy per role: redemption cannot reach the issuance Redis, issuance cannot reach upstream providers', async () => {
    const objs = await objects('np', ['redis.bundled.enabled=true', 'networkPolicy.issuance.httpsCidrs[0]=20.0.0.0/8']);
    const sel = (o: any) => o.spec.podSelector.matchLabels['app.kubernetes.io/component']; // eslint-disable-line @typescript-eslint/no-explicit-any
    const red = find(objs, 'NetworkPolicy', 'llmtor-redemption');
    const iss = find(objs, 'NetworkPolicy', 'llmtor-issuance');
    assert.equal(sel(red), 'redemption');
    assert.equal(sel(iss), 'issuance');
    const podTargets = (np: Obj) => np.spec.egress.flatMap((r: any) => (r.to ?? []).map((t: any) => t.podSelector?.matchLabels?.['app.kubernetes.io/component'])).filter(Boolean); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(podTargets(red), ['redis-redemption']);
    assert.deepEqual(podTargets(iss), ['redis-issuance']);
    const isDns = (r: any) => r.ports?.length && r.ports.every((p: any) => p.port === 53); // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const np of [iss, red]) assert.equal(np.spec.egress.filter(isDns).length, 1, 'DNS');
    const ipRules = (np: Obj) => np.spec.egress.filter((r: any) => !isDns(r) && ((r.to ?? []).some((t: any) => t.ipBlock) || !r.to)).map((r: any) => ({ cidrs: (r.to ?? []).map((t: any) => t.ipBlock.cidr), ports: (r.ports ?? []).map((p: any) => p.port) })); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(ipRules(iss), [{ cidrs: ['20.0.0.0/8'], ports: [443] }], 'issuance: HTTPS only to the ranges given (Key Vault, Stripe), nothing else outside');
    assert.deepEqual(ipRules(red), [{ cidrs: ['0.0.0.0/0'], ports: [443] }], 'redemption: providers over HTTPS');
    assert.ok(red.spec.egress.find((r: any) => r.to?.[0]?.ipBlock).to[0].ipBlock.except.includes('10.0.0.0/8'), 'not into the cluster'); // eslint-disable-line @typescript-eslint/no-explicit-any
    const redisIss = find(objs, 'NetworkPolicy', 'llmtor-redis-issuance');
    assert.deepEqual(redisIss.spec.ingress.map((r: any) => (r._from ?? r.from)[0].podSelector.matchLabels['app.kubernetes.io/component']), ['issuance'], 'the accounts Redis accepts issuance pods only'); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(sel(redisIss), 'redis-issuance');
    assert.ok(!(await objects('np', ['redis.bundled.enabled=true', 'networkPolicy.enabled=false'])).some((o) => o.kind === 'NetworkPolicy'), 'opt-out');
    const ns = await newNamespace(env, 'np');
    const out = await template(ns, ['redis.bundled.enabled=true']);
    const r = await env.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: docs(out).filter((d) => /^kind: NetworkPolicy$/m.test(d)).join('\n---\n') });
    assert.equal(r.code, 0, r.stderr);
  });

  it('values.schema.json: a wrongly typed value fails helm template and helm lint with a message naming it', async () => {
    for (const [value, message] of [
      ['proxy.issuance.replicas=two', "at '/proxy/issuance/replicas': got string, want integer"],
      ['redis.bundled.enabled=yes', "at '/redis/bundled/enabled': got string, want boolean"],
      ['proxy.image.digest=sha256:abc', "at '/proxy/image/digest'"],
      ['networkPolicy.enabled=maybe', "at '/networkPolicy/enabled': got string, want boolean"],
    ] as const) {
      const t = await run(helm, ['template', 'llmtor', CHART, '--set', REDIS.join(','), '--set', value]).then(() => '', (e: { stderr: string }) => e.stderr);
      assert.ok(t.includes("values don't meet the specifications of the schema"), `${value}: ${t}`);
      assert.ok(t.includes(message), `${value}: ${t}`);
      const l = await run(helm, ['lint', '--strict', CHART, '--set', REDIS.join(','), '--set', value]).then(() => '', (e: { stdout: string; stderr: string }) => e.stdout + e.stderr);
      assert.ok(l.includes(message), `lint ${value}: ${l}`);
    }
  });

  it('renders without --kube-version; labels are quoted (releases named 123 and y are valid YAML the API server accepts)', async () => {
    const ns = await newNamespace(env, 'labels');
    for (const release of ['123', 'y']) {
      const { stdout } = await run(helm, ['template', release, CHART, '--namespace', ns, '--skip-tests', '--set', REDIS.join(',')], { maxBuffer: 1 << 24 });
      const objs = JSON.parse(JSON.stringify(loadAllYaml(stdout))) as Obj[];
      assert.ok(objs.length > 10);
      for (const o of objs) {
        for (const labels of [o.metadata?.labels, o.spec?.selector?.matchLabels, o.spec?.template?.metadata?.labels, o.spec?.podSelector?.matchLabels]) {
          for (const [k, val] of Object.entries(labels ?? {})) assert.equal(typeof val, 'string', `${o.kind} ${o.metadata?.name}: label ${k}=${String(val)}`);
        }
        if (o.metadata?.labels) assert.equal(o.metadata.labels['app.kubernetes.io/instance'], release);
      }
      const r = await env.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: stdout });
      assert.equal(r.code, 0, r.stderr);
    }
  });

  it('two releases in one namespace (another TokenIssuer name): no object of one overwrites the other', async () => {
    const ns = await newNamespace(env, 'tworel');
    const first = await template(ns, REDIS);
    const second = (await run(helm, ['template', 'other', CHART, '--namespace', ns, '--skip-tests', '--set', [...REDIS, 'tokenIssuer.name=second', 'operator.enabled=false'].join(',')], { maxBuffer: 1 << 24 })).stdout;
    const ids = (y: string) => (JSON.parse(JSON.stringify(loadAllYaml(y))) as Obj[]).filter((o) => o.kind !== 'CustomResourceDefinition').map((o) => `${o.kind}/${o.metadata!.name}`);
    const both = [...ids(first), ...ids(second)];
    assert.equal(new Set(both).size, both.length, 'no name twice');
    assert.ok(ids(second).includes('TokenIssuer/second'));
    const objs2 = JSON.parse(JSON.stringify(loadAllYaml(second))) as Obj[];
    const keys = find(objs2, 'Deployment', 'other-llmtor-issuance').spec.template.spec.volumes.find((v: { name: string }) => v.name === 'keys');
    assert.equal(keys.secret.secretName, 'second-signing-keys');
    assert.equal(find(objs2, 'Deployment', 'other-llmtor-redemption').spec.template.spec.volumes.find((v: { name: string }) => v.name === 'keys').configMap.name, 'second-directory');
    // Really applied, one after the other: the second only creates.
    let r = await env.kubectl(['apply', '-n', ns, '-f', '-'], { input: first });
    assert.equal(r.code, 0, r.stderr);
    r = await env.kubectl(['apply', '-n', ns, '-f', '-'], { input: second });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, ids(second).length);
    for (const line of lines) assert.match(line, / created$/);
  });

  it('PodDisruptionBudgets, metrics Service and ServiceMonitors, scheduling, probes with a startupProbe, image digests', async () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const values = [
      ...REDIS, 'metrics.service.enabled=true', 'metrics.serviceMonitor.enabled=true', 'metrics.serviceMonitor.labels.release=prom',
      `proxy.image.digest=${digest}`, 'proxy.redemption.priorityClassName=high', 'proxy.redemption.tolerations[0].key=dedicated', 'proxy.redemption.tolerations[0].operator=Exists',
      'proxy.issuance.topologySpreadConstraints[0].maxSkew=1', 'proxy.issuance.topologySpreadConstraints[0].topologyKey=kubernetes.io/hostname', 'proxy.issuance.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway',
      'proxy.issuance.topologySpreadConstraints[0].labelSelector.matchLabels.app\\.kubernetes\\.io/component=issuance',
      'operator.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool',
      'operator.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists',
      'proxy.issuance.podAnnotations.team=billing', 'proxy.redemption.probes.startupProbe.failureThreshold=90', 'proxy.issuance.probes.livenessProbe.enabled=false',
      'proxy.issuance.pdb.minAvailable=1',
    ];
    const objs = await objects('conv', values);
    const pdbI = find(objs, 'PodDisruptionBudget', 'llmtor-issuance');
    const pdbR = find(objs, 'PodDisruptionBudget', 'llmtor-redemption');
    assert.deepEqual([pdbI.spec.minAvailable, pdbI.spec.maxUnavailable, pdbR.spec.maxUnavailable], [1, undefined, 1]);
    assert.equal(pdbR.spec.selector.matchLabels['app.kubernetes.io/component'], 'redemption');
    assert.equal(find(objs, 'Service', 'llmtor-operator-metrics').spec.ports[0].targetPort, 'metrics');
    for (const [c, port] of [['operator', 'metrics'], ['issuance', 'http'], ['redemption', 'http']]) {
      const sm = find(objs, 'ServiceMonitor', `llmtor-${c}`);
      assert.equal(sm.metadata!.labels!.release, 'prom');
      assert.deepEqual([sm.spec.endpoints[0].port, sm.spec.endpoints[0].path], [port, '/metrics']);
      // It selects a Service of this release that has that port.
      const svc = objs.filter((o) => o.kind === 'Service' && Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => o.metadata!.labels?.[k] === v) && o.spec.ports.some((p: { name: string }) => p.name === port));
      assert.equal(svc.length, 1, `${c}: one Service`);
    }
    const pod = (n: string) => find(objs, 'Deployment', n).spec.template;
    const red = pod('llmtor-redemption');
    const iss = pod('llmtor-issuance');
    assert.equal(red.spec.priorityClassName, 'high');
    assert.deepEqual(red.spec.tolerations, [{ key: 'dedicated', operator: 'Exists' }]);
    assert.equal(iss.spec.topologySpreadConstraints[0].topologyKey, 'kubernetes.io/hostname');
    assert.equal(pod('llmtor-operator').spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key, 'pool');
    assert.equal(iss.metadata.annotations.team, 'billing');
    const proxyOf = (p: any) => p.spec.containers.find((c: { name: string }) => c.name === 'proxy'); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(proxyOf(red).startupProbe, { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 2, failureThreshold: 90 });
    assert.equal(proxyOf(iss).livenessProbe, undefined);
    assert.ok(proxyOf(iss).startupProbe && proxyOf(iss).readinessProbe);
    assert.ok(pod('llmtor-operator').spec.containers[0].startupProbe);
    assert.equal(proxyOf(red).image, `ghcr.io/llmtor/llmtor-proxy@${digest}`);
    assert.equal(pod('llmtor-operator').spec.containers[0].image, 'ghcr.io/llmtor/llmtor-operator:0.1.0');
    const ns = await newNamespace(env, 'conv');
    const out = (await run(helm, ['template', 'llmtor', CHART, '--namespace', ns, '--skip-tests', ...values.flatMap((v) => ['--set', v])], { maxBuffer: 1 << 24 })).stdout;
    // Everything but the ServiceMonitors (no Prometheus Operator CRD here) passes the API server's validation.
    const r = await env.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: docs(out).filter((d) => !/^kind: ServiceMonitor$/m.test(d)).join('\n---\n') });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /poddisruptionbudget.policy\/llmtor-issuance created \(server dry run\)/);
    assert.ok(!(await objects('conv', [...REDIS, 'proxy.redemption.replicas=1'])).some((o) => o.kind === 'PodDisruptionBudget' && o.metadata!.name === 'llmtor-redemption'), 'no PDB for a single pod');
  });

  it('helm test hook: passes against a proxy serving its issuer directory, fails (bounded) when nothing answers', async function () {
    this.timeout(60_000);
    const hookYaml = (await run(helm, ['template', 'llmtor', CHART, '--namespace', 'hook', '--show-only', 'templates/tests/directory.yaml', '--set', REDIS.join(',')])).stdout;
    const hook = (JSON.parse(JSON.stringify(loadAllYaml(hookYaml))) as Obj[])[0]!;
    assert.equal(hook.metadata?.annotations?.['helm.sh/hook'], 'test');
    const ns = await newNamespace(env, 'hook');
    await env.kubectl(['create', 'serviceaccount', 'default', '-n', ns]); // a controller-manager would have made it
    const applied = await env.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input: hookYaml });
    assert.equal(applied.code, 0, applied.stderr);
    const c = hook.spec.containers[0];
    const envVars = Object.fromEntries(c.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    assert.equal(envVars.LLMTOR_TEST_URLS, 'http://llmtor-issuance.hook.svc:80,http://llmtor-redemption.hook.svc:80');
    assert.deepEqual(c.command.slice(0, 2), ['node', '-e']);
    const proxy = await startProxy(loadConfig({ env: { LLMTOR_ROLES: 'issuance', LLMTOR_HOST: '127.0.0.1', PORT: '0', LLMTOR_LOG_LEVEL: 'silent' } }));
    try {
      const ok = await run(process.execPath, ['-e', c.command[2]], { env: { ...process.env, LLMTOR_TEST_URLS: proxy.url, LLMTOR_TEST_TRIES: '3' }, timeout: 30_000 });
      assert.match(ok.stdout, /private-token-issuer-directory: [1-9]\d* token keys/);
      const port = await freePort();
      const bad = await run(process.execPath, ['-e', c.command[2]], { env: { ...process.env, LLMTOR_TEST_URLS: `${proxy.url},http://127.0.0.1:${port}`, LLMTOR_TEST_TRIES: '2' }, timeout: 30_000 }).then(() => undefined, (e: { code: number; stderr: string }) => e);
      assert.ok(bad, 'fails when a Service does not answer');
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, new RegExp(`127\\.0\\.0\\.1:${port}/\\.well-known/private-token-issuer-directory: .*ECONNREFUSED`));
    } finally {
      await proxy.stop();
    }
  });

  it('the README lists every value of values.yaml', () => {
    const readme = readFileSync(`${CHART}/README.md`, 'utf8');
    const values = loadAllYaml(readFileSync(`${CHART}/values.yaml`, 'utf8'))[0] as Record<string, unknown>;
    // Maps the table shows whole (helm/values-table.py).
    const whole = new Set(['resources', 'probes', 'spec', 'config', 'lease', 'backoff', 'service', 'pdb', 'tlsCa', 'passwordSecret', 'sentinelPasswordSecret']);
    const missing: string[] = [];
    const walk = (o: Record<string, unknown>, path: string[]) => {
      for (const [k, v] of Object.entries(o)) {
        const p = [...path, k];
        if (v && typeof v === 'object' && !Array.isArray(v) && !whole.has(k) && Object.keys(v).length > 0) walk(v as Record<string, unknown>, p);
        else if (!readme.includes(`| \`${p.join('.')}\` |`)) missing.push(p.join('.'));
      }
    };
    walk(values, []);
    assert.deepEqual(missing, [], 'run python3 helm/values-table.py and update the README');
  });
});

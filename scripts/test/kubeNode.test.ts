/**
 * The single-node cluster of scripts/src/kubeNode.ts, for real: containerd + runc run
 * pods on the bridge, the scheduler places them, the controller-manager runs the
 * Deployment and the garbage collector, kube-proxy routes a ClusterIP, CoreDNS names it,
 * and `stop()` leaves nothing of ours behind. Needs root; the first run builds the
 * binaries (scripts/kube/build-node.sh).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureKubeBinaries } from '../src/kubeTestEnv.js';
import { kubeNodeImage, kubeNodeStatus, NODE_NETNS, startKubeNode, type KubeNode } from '../src/kubeNode.js';

function iptablesChains(): string[] {
  const r = spawnSync('iptables-save', [], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter((l) => l.startsWith(':')).map((l) => l.split(' ')[0]!);
}

function netnsList(): string[] {
  try {
    return readdirSync('/run/netns').sort();
  } catch {
    return [];
  }
}

async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('kube node: a real single-node cluster (kubelet, containerd, scheduler, controller-manager, kube-proxy, CoreDNS)', function () {
  let node: KubeNode | undefined;
  const before0 = { chains: [] as string[], netns: [] as string[] };
  let dir = '';
  // A namespace of the test's own attached to the pod bridge (what the Helm E2E does with its Tor network).
  const PEER_NS = `llmtor-test-peer-${process.pid}`;
  let peerHttpd: ChildProcess | undefined;
  let www = '';

  before(async function () {
    assert.equal(process.getuid?.(), 0, 'the kube node test needs root (network namespace, mounts, cgroups)');
    this.timeout(45 * 60_000); // a first run on a machine builds the binaries
    await ensureKubeBinaries();
    before0.chains = iptablesChains();
    before0.netns = netnsList().filter((n) => n !== NODE_NETNS);
    const t0 = Date.now();
    node = await startKubeNode({ readyTimeoutMs: 150_000, log: (l) => process.stderr.write(`      [node] ${l}\n`) });
    dir = node.dir;
    console.log(`      node up in ${((Date.now() - t0) / 1000).toFixed(1)} s (API server ${node.timings.apiServerReadyMs} ms, node Ready ${node.timings.nodeReadyMs} ms)`);
  });

  after(async function () {
    this.timeout(120_000);
    peerHttpd?.kill('SIGKILL');
    await node?.stop();
    spawnSync('ip', ['netns', 'del', PEER_NS]);
    if (www) rmSync(www, { recursive: true, force: true });
  });

  it('registers a Ready node', async function () {
    const r = await node!.kubectl(['get', 'node', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const nodes = (JSON.parse(r.stdout) as { items: { metadata: { name: string }; status: { conditions: { type: string; status: string }[] } }[] }).items;
    assert.equal(nodes.length, 1);
    assert.equal(nodes[0]!.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
  });

  it('runs a 2-replica Deployment, and a Service answers by name (CoreDNS) through its ClusterIP (kube-proxy) from another pod', async function () {
    this.timeout(240_000);
    const busybox = kubeNodeImage('busybox');
    const names = await node!.importImage(busybox.archive);
    assert.ok(names.includes(busybox.name), `imported ${names.join(', ')}`);
    const apply = await node!.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'web' },
            spec: {
              replicas: 2,
              selector: { matchLabels: { app: 'web' } },
              template: {
                metadata: { labels: { app: 'web' } },
                spec: {
                  terminationGracePeriodSeconds: 1,
                  containers: [
                    {
                      name: 'httpd',
                      image: busybox.name,
                      imagePullPolicy: 'Never',
                      command: ['/bin/busybox', 'sh', '-c', 'mkdir -p /tmp/www && echo "served-by $HOSTNAME" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www'],
                      ports: [{ containerPort: 8080 }],
                      readinessProbe: { httpGet: { path: '/', port: 8080 }, periodSeconds: 1 },
                    },
                  ],
                },
              },
            },
          },
          {
            apiVersion: 'v1',
            kind: 'Service',
            metadata: { name: 'web' },
            spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
          },
        ],
      }),
    });
    assert.equal(apply.code, 0, apply.stderr);
    const rollout = await node!.kubectl(['rollout', 'status', 'deployment/web', '--timeout=150s'], { timeoutMs: 160_000 });
    assert.equal(rollout.code, 0, `${rollout.stdout}${rollout.stderr}\n${(await node!.kubectl(['get', 'pods,events', '-o', 'wide'])).stdout}`);
    const pods = JSON.parse((await node!.kubectl(['get', 'pods', '-l', 'app=web', '-o', 'json'])).stdout) as {
      items: { metadata: { name: string }; status: { podIP: string; conditions: { type: string; status: string }[] } }[];
    };
    assert.equal(pods.items.length, 2);
    for (const p of pods.items) {
      assert.equal(p.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
      assert.match(p.status.podIP, /^10\.213\.0\./);
    }
    const clusterIP = (await node!.kubectl(['get', 'svc', 'web', '-o', 'jsonpath={.spec.clusterIP}'])).stdout.trim();
    assert.match(clusterIP, /^10\.213\.1\./);

    // A namespace of ours on the bridge: it reaches the ClusterIP, and pods reach it.
    assert.equal(spawnSync('ip', ['netns', 'add', PEER_NS]).status, 0);
    spawnSync('ip', ['-n', PEER_NS, 'link', 'set', 'lo', 'up']);
    const peerIp = await node!.attachNetns(PEER_NS);
    assert.match(peerIp, /^10\.213\.0\.2\d\d$/);
    www = mkdtempSync(join(tmpdir(), 'llmtor-node-peer-'));
    writeFileSync(join(www, 'index.html'), 'hello-from-peer\n');
    peerHttpd = spawn('nsenter', [`--net=/run/netns/${PEER_NS}`, '--', 'busybox', 'httpd', '-f', '-p', `${peerIp}:8081`, '-h', www], { stdio: 'ignore' });
    const fromPeer = spawnSync('nsenter', [`--net=/run/netns/${PEER_NS}`, '--', 'busybox', 'wget', '-q', '-O', '-', `http://${clusterIP}/`], { encoding: 'utf8', timeout: 15_000 });
    assert.match(fromPeer.stdout, /^served-by web-/, `from ${PEER_NS}: ${fromPeer.stderr}`);

    // The host reaches the ClusterIP through a loopback relay.
    const relay = await node!.exposeToHost(clusterIP, 80);
    const viaHost = await new Promise<string>((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port: relay.port, path: '/', timeout: 10_000 }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (c: string) => (b += c)).on('end', () => resolve(b));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
    });
    await relay.close();
    assert.match(viaHost, /^served-by web-/);

    // Another pod resolves the name and fetches 20 times through the ClusterIP. (No `wget -T`:
    // Debian's static busybox 1.35 crashes on it; the pod's activeDeadlineSeconds bounds it.)
    const script = `nslookup web.default.svc.cluster.local; i=0; while [ $i -lt 20 ]; do wget -q -O - http://web/ || echo FAILED; i=$((i+1)); done; wget -q -O - http://${peerIp}:8081/ || echo FAILED; nc -w 2 kubernetes.default.svc 443 </dev/null && echo API-REACHABLE`;
    const run = await node!.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'client' },
        spec: {
          restartPolicy: 'Never',
          activeDeadlineSeconds: 60,
          containers: [{ name: 'client', image: busybox.name, imagePullPolicy: 'Never', command: ['/bin/busybox', 'sh', '-c', script] }],
        },
      }),
    });
    assert.equal(run.code, 0, run.stderr);
    const phase = await until('client pod to finish', 90_000, async () => {
      const p = (await node!.kubectl(['get', 'pod', 'client', '-o', 'jsonpath={.status.phase}'])).stdout.trim();
      return p === 'Succeeded' || p === 'Failed' ? p : undefined;
    });
    const logs = await node!.kubectl(['logs', 'client']);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(phase, 'Succeeded', logs.stdout);
    assert.ok(logs.stdout.includes(clusterIP), `nslookup answered the ClusterIP ${clusterIP}:\n${logs.stdout}`);
    assert.ok(!logs.stdout.includes('FAILED'), logs.stdout);
    assert.ok(logs.stdout.includes('API-REACHABLE'), `the API server answers pods at kubernetes.default.svc:443:\n${logs.stdout}`);
    assert.ok(logs.stdout.includes('hello-from-peer'), `a pod reached the attached namespace at ${peerIp}:\n${logs.stdout}`);
    const servedBy = new Set([...logs.stdout.matchAll(/^served-by (\S+)$/gm)].map((m) => m[1]));
    assert.equal([...logs.stdout.matchAll(/^served-by /gm)].length, 20, logs.stdout);
    assert.deepEqual([...servedBy].sort(), pods.items.map((p) => p.metadata.name).sort(), 'both replicas answered through the ClusterIP');
  });

  it('gives pods a ServiceAccount token the API server accepts (token signing, root CA publisher, exec through the kubelet)', async function () {
    this.timeout(60_000);
    const cm = await node!.kubectl(['get', 'configmap', 'kube-root-ca.crt', '-o', 'jsonpath={.data.ca\\.crt}']);
    assert.equal(cm.code, 0, cm.stderr);
    assert.equal(cm.stdout.trim(), node!.caPem.trim());
    const pod = (await node!.kubectl(['get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}'])).stdout.trim();
    const tok = await node!.kubectl(['exec', pod, '--', '/bin/busybox', 'cat', '/var/run/secrets/kubernetes.io/serviceaccount/token']);
    assert.equal(tok.code, 0, tok.stderr);
    const review = await node!.kubectl(['create', '-o', 'json', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: tok.stdout.trim() } }),
    });
    assert.equal(review.code, 0, review.stderr);
    const status = (JSON.parse(review.stdout) as { status: { authenticated?: boolean; user?: { username: string } } }).status;
    assert.equal(status.authenticated, true);
    assert.equal(status.user?.username, 'system:serviceaccount:default:default');
  });

  it('garbage-collects a ConfigMap whose owner is deleted (kube-controller-manager)', async function () {
    this.timeout(90_000);
    const created = await node!.kubectl(['create', 'configmap', 'gc-owner', '--from-literal=a=b', '-o', 'jsonpath={.metadata.uid}']);
    assert.equal(created.code, 0, `kubectl create configmap: ${created.stdout}${created.stderr}`);
    const child = await node!.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'gc-child', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'gc-owner', uid: created.stdout.trim() }] },
        data: { x: 'y' },
      }),
    });
    assert.equal(child.code, 0, child.stderr);
    const del = await node!.kubectl(['delete', 'configmap', 'gc-owner', '--wait=true']);
    assert.equal(del.code, 0, del.stderr);
    await until('gc-child to be garbage-collected', 60_000, async () => {
      const r = await node!.kubectl(['get', 'configmap', 'gc-child', '--ignore-not-found', '-o', 'name']);
      return r.code === 0 && r.stdout.trim() === '' ? true : undefined;
    });
  });

  it('stop() leaves no process, mount, network namespace, iptables chain or cgroup of ours', async function () {
    this.timeout(120_000);
    const t0 = Date.now();
    await node!.stop();
    console.log(`      node down in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.notEqual(spawnSync('ip', ['-n', PEER_NS, 'link', 'show', 'llmtor-a200']).status, 0, 'the attached veth is gone');
    peerHttpd?.kill('SIGKILL');
    assert.equal(spawnSync('ip', ['netns', 'del', PEER_NS]).status, 0);
    const s = await kubeNodeStatus(dir);
    assert.deepEqual(s.running, []);
    assert.equal(s.mounts, 0);
    assert.equal(s.netns, false);
    assert.deepEqual(netnsList(), before0.netns);
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(dir), 'no mount under the run dir');
    assert.deepEqual(iptablesChains(), before0.chains, 'host iptables chains unchanged');
    const leftovers = spawnSync('pgrep', ['-f', `${dir}/`], { encoding: 'utf8' }).stdout.trim();
    assert.equal(leftovers, '', `processes naming ${dir}: ${leftovers}`);
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ');
      const fstype = f[f.indexOf('-') + 1];
      if (fstype === 'cgroup' || fstype === 'cgroup2') assert.ok(!existsSync(`${f[4]}/llmtor-node`), `cgroup ${f[4]}/llmtor-node removed`);
    }
  });
});

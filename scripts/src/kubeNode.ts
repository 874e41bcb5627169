/**
 * A real single-node Kubernetes cluster on this machine: etcd, kube-apiserver,
 * containerd + runc, kubelet, kube-scheduler, kube-controller-manager, kube-proxy
 * (iptables) and CoreDNS, every one of them inside one network namespace the run
 * creates (`llmtor-node`), with the pods on a bridge (`llmtor0`) inside it. The
 * namespace has no route out of the machine; the host reaches the API server through a
 * loopback relay (127.0.0.1:<port> -> unix socket -> the namespace's 127.0.0.1:6443).
 * See docs/kube-node.md.
 *
 *   const node = await startKubeNode();         // ~30-60 s warm
 *   await node.importImage('/path/image.oci.tar');
 *   await node.kubectl(['apply', '-f', '-'], { input: yaml });
 *   await node.stop();                          // kills, unmounts, deletes the namespace
 *
 * The processes are detached: they outlive the calling process (scripts/kube/node.sh up
 * relies on that). `startKubeNode` first cleans whatever a crashed run left behind.
 *
 * Modules: kubeNodeLayout (names, ranges), kubeNodeHost (namespace, bridge, veths, relays,
 * mounts, sysctls), kubeNodeProcesses (components, cgroups, the lock, the state file),
 * kubeNodeConfig (PKI and component configs).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { containerdConfig, COREDNS_RBAC, corefile, kubeconfig, kubeletConfig, kubeProxyConfig, makePki } from './kubeNodeConfig.js';
import {
  attachNetns,
  createNodeNetwork,
  deleteNodeNetwork,
  exposeToHost,
  exposeToPods,
  inNs,
  mountsUnder,
  netnsExists,
  restoreHostSysctls,
  run,
  saveHostSysctls,
  unmountAll,
} from './kubeNodeHost.js';
import { ADMIN_USER, API_PORT, CGROUP_ROOT, imagesDir, kubeNodeDir, NODE_BRIDGE, NODE_IP, NODE_NAME, NODE_NETNS, POD_CIDR, SERVICE_CIDR, CLUSTER_DNS } from './kubeNodeLayout.js';
import {
  alive,
  cgroupPids,
  cgroupRoots,
  killAll,
  loadState,
  pidsReferencing,
  releaseOwnership,
  removeCgroups,
  saveState,
  spawnDetached,
  tail,
  takeOwnership,
  waitUntil,
  type NodeState,
} from './kubeNodeProcesses.js';
import { ensureKubeBinaries, kubeBinDir, kubeBuildScript } from './kubeTestEnv.js';
import { freePort } from './ports.js';
import { type CommandResult } from './runCommand.js';

export { CLUSTER_DNS, kubeNodeDir, kubeNodeImage, NODE_BRIDGE, NODE_IP, NODE_NAME, NODE_NETNS, POD_CIDR, SERVICE_CIDR } from './kubeNodeLayout.js';

export interface KubeNodeOptions {
  /** run directory (all state, logs, mounts); default $LLMTOR_NODE_DIR or /var/lib/llmtor-node */
  dir?: string;
  kubeVersion?: string;
  /** build missing binaries (scripts/kube/build.sh + build-node.sh); default true unless $LLMTOR_KUBE_NO_BUILD=1 */
  build?: boolean;
  kubectlPath?: string;
  /** time allowed for the node to become ready; default 150 s */
  readyTimeoutMs?: number;
  /**
   * How long to wait while another live process owns the node (one node per machine;
   * parallel test runs take turns); default 20 min. A node whose owner exited (a crashed
   * test, or `node.sh up`, whose command returns) is taken over at once.
   */
  waitForOtherMs?: number;
  /** progress lines (e.g. console.error) */
  log?: (line: string) => void;
}

export type KubectlResult = CommandResult;

export interface KubeNode {
  /** `https://127.0.0.1:<port>` on the host (relayed into the namespace) */
  readonly server: string;
  readonly caPem: string;
  /** admin bearer token (group system:masters) */
  readonly token: string;
  /** kubeconfig file (admin, server on host loopback); `<dir>/kubeconfig` */
  readonly kubeconfigPath: string;
  readonly dir: string;
  readonly kubeVersion: string;
  /** milliseconds from the call to: API server ready, node Ready, everything ready */
  readonly timings: { apiServerReadyMs: number; nodeReadyMs: number; totalMs: number };
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** run a command inside the node's network namespace (same mounts and pid namespace as the host) */
  exec(cmd: string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /**
   * `ctr -n k8s.io images import <archive>` (an OCI or docker archive); returns the image
   * names imported. An OCI index entry is named by its `io.containerd.image.name`
   * annotation; for one with only `org.opencontainers.image.ref.name` (a tag), pass
   * `baseName` (e.g. 'ghcr.io/llmtor/llmtor-proxy' -> 'ghcr.io/llmtor/llmtor-proxy:<tag>').
   */
  importImage(archivePath: string, opts?: { baseName?: string }): Promise<string[]>;
  /** relay 127.0.0.1:<port> on the host to host:port inside the namespace (a pod IP or ClusterIP) */
  exposeToHost(host: string, port: number): Promise<{ port: number; close(): Promise<void> }>;
  /**
   * Relay `NODE_IP:nsPort` (default nsPort = hostPort), which pods reach, to host
   * 127.0.0.1:hostPort: for a stand-in running in the test process (an upstream API, Redis).
   */
  exposeToPods(hostPort: number, nsPort?: number): Promise<{ host: string; port: number; close(): Promise<void> }>;
  /**
   * Put a veth into `netns` (a namespace the caller created) attached to the pod bridge,
   * with an address from 10.213.0.200-250 and routes to the pod and service networks;
   * from there pods and ClusterIPs are reachable, and pods reach that address. Returns it.
   */
  attachNetns(netns: string): Promise<string>;
  /** kill everything, unmount, delete the namespace, restore sysctls; idempotent */
  stop(): Promise<void>;
}

function httpsGet(url: string, ca: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, headers: { authorization: `Bearer ${token}` }, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}


/**
 * Stop a node (running, or left behind by a crashed run): remove the pods through the
 * CRI while containerd lives, kill every component, shim and container, unmount
 * everything under the run dir, delete the network namespace (its bridge, veths and
 * iptables rules go with it), remove our cgroups and restore the kubelet's sysctls.
 * Logs of the run are kept in `<dir>.last-logs/`. Idempotent.
 */
export async function stopKubeNode(opts: { dir?: string; kubeVersion?: string; log?: (l: string) => void } = {}): Promise<void> {
  const dir = opts.dir ?? kubeNodeDir();
  const t0 = Date.now();
  const log = opts.log ? (l: string) => opts.log!(`${l} (+${((Date.now() - t0) / 1000).toFixed(1)} s)`) : () => undefined;
  const state = await loadState(dir);
  const sock = join(dir, 'containerd', 'containerd.sock');
  const crictl = join(kubeBinDir(opts.kubeVersion ?? process.env.LLMTOR_KUBE_VERSION ?? 'v1.33.13'), 'crictl');
  const procs = state?.procs ?? [];
  const containerd = procs.find((p) => p.name === 'containerd');
  // Kubelet first, so it does not restart what we remove.
  await killAll(procs.filter((p) => p.name === 'kubelet'), 10_000, log);
  if (containerd && alive(containerd) && existsSync(crictl)) {
    log('removing pods');
    await run(crictl, ['--runtime-endpoint', `unix://${sock}`, '--timeout', '20s', 'rmp', '--force', '--all'], { timeoutMs: 40_000 });
  }
  log('stopping processes');
  // Throw-away state: no need to wait long for graceful shutdowns (the API server drains watches).
  await killAll(procs.filter((p) => p.name !== 'containerd'), 3_000, log);
  await killAll([...pidsReferencing(join(dir, 'containerd')).filter((p) => p.pid !== containerd?.pid), ...cgroupPids()], 5_000, log);
  if (containerd) await killAll([containerd], 10_000, log);
  // Anything that outlived containerd or was not recorded (a run that crashed before saving its state).
  await killAll([...pidsReferencing(dir), ...cgroupPids()], 5_000, log);

  log('unmounting');
  await unmountAll(dir);
  await deleteNodeNetwork(state?.attached ?? []);
  await removeCgroups();
  await restoreHostSysctls(dir);
  if (existsSync(dir)) {
    const logs = join(dir, 'logs');
    const keep = `${dir}.last-logs`;
    await rm(keep, { recursive: true, force: true });
    if (existsSync(logs)) await rename(logs, keep).catch(() => undefined);
    if (mountsUnder(dir).length === 0) await rm(dir, { recursive: true, force: true });
  }
  log('down');
}

/** What is still there of a node: live components, mounts, the namespace. */
export async function kubeNodeStatus(dir: string = kubeNodeDir()): Promise<{ running: string[]; dead: string[]; mounts: number; netns: boolean }> {
  const state = await loadState(dir);
  const procs = state?.procs ?? [];
  return {
    running: procs.filter(alive).map((p) => p.name),
    dead: procs.filter((p) => !alive(p)).map((p) => p.name),
    mounts: mountsUnder(dir).length,
    netns: netnsExists(NODE_NETNS),
  };
}

// ----------------------------------------------------------------------------- up

async function ensureNodeBinaries(kubeVersion: string, build: boolean): Promise<string> {
  const binDir = await ensureKubeBinaries({ kubeVersion, build });
  const need = ['kubelet', 'kube-scheduler', 'kube-controller-manager', 'kube-proxy', 'crictl', 'coredns'];
  const missing = () => need.filter((b) => !existsSync(join(binDir, b))).concat(existsSync(join(imagesDir(kubeVersion), 'pause.tar')) ? [] : ['pause.tar']);
  if (missing().length === 0) return binDir;
  if (!build) throw new Error(`missing ${missing().join(', ')} in ${binDir}; run scripts/kube/build-node.sh`);
  const script = join(kubeBuildScript(), '..', 'build-node.sh');
  const r = await run('bash', [script], { timeoutMs: 60 * 60_000, env: { ...process.env, KUBE_VERSION: kubeVersion } });
  if (r.code !== 0) throw new Error(`build-node.sh failed (${r.code}):\n${r.stderr.slice(-4000)}`);
  if (missing().length) throw new Error(`build-node.sh finished but ${missing().join(', ')} missing`);
  return binDir;
}

export async function startKubeNode(opts: KubeNodeOptions = {}): Promise<KubeNode> {
  const t0 = Date.now();
  const dir = opts.dir ?? kubeNodeDir();
  const kubeVersion = opts.kubeVersion ?? process.env.LLMTOR_KUBE_VERSION ?? 'v1.33.13';
  const log = opts.log ?? (() => undefined);
  const kubectlPath = opts.kubectlPath ?? process.env.KUBECTL ?? '/usr/bin/kubectl';
  if (process.getuid?.() !== 0) throw new Error('the kube node needs root (network namespace, mounts, cgroups)');
  const binDir = await ensureNodeBinaries(kubeVersion, opts.build ?? process.env.LLMTOR_KUBE_NO_BUILD !== '1');
  const bin = (b: string) => join(binDir, b);

  await takeOwnership(dir, opts.waitForOtherMs ?? 20 * 60_000, log);
  await stopKubeNode({ dir, kubeVersion, log }); // leftovers of a crashed run
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 150_000);
  for (const d of ['logs', 'pki', 'etcd', 'home', 'kubelet', 'pod-logs', 'containerd/root', 'containerd/state', 'cni/net.d', 'config']) {
    await mkdir(join(dir, d), { recursive: true, mode: 0o700 });
  }
  const state: NodeState = { procs: [], attached: [] };
  // Saved before anything runs; the down above restored and removed any earlier copy.
  await saveHostSysctls(dir);
  await saveState(dir, state);
  const start = async (name: string, cmd: string, args: string[], netns = true) => {
    state.procs.push(spawnDetached(dir, name, cmd, args, netns));
    await saveState(dir, state);
  };
  const deadProcs = () => state.procs.filter((p) => !alive(p)).map((p) => p.name);
  const why = async (...named: string[]) => {
    const names = [...new Set([...named, ...deadProcs()])];
    const parts = await Promise.all(names.map(async (n) => `--- ${n}.log\n${await tail(join(dir, 'logs', `${n}.log`))}`));
    const dead = state.procs.filter((p) => !alive(p)).map((p) => p.name);
    return (dead.length ? `exited: ${dead.join(', ')}\n` : '') + parts.join('\n');
  };

  try {
    // --- credentials
    const pki = join(dir, 'pki');
    await makePki(pki);
    const ca = join(pki, 'ca.crt');
    const caPem = await readFile(ca, 'utf8');
    const tokens: Record<string, { token: string; user: string; groups: string }> = {};
    const addToken = (who: string, user: string, groups: string) => {
      tokens[who] = { token: randomBytes(24).toString('base64url'), user, groups };
    };
    addToken('admin', ADMIN_USER, 'system:masters');
    addToken('kubelet', `system:node:${NODE_NAME}`, 'system:nodes');
    addToken('scheduler', 'system:kube-scheduler', '');
    addToken('controller-manager', 'system:kube-controller-manager', '');
    addToken('proxy', 'system:kube-proxy', '');
    addToken('coredns', 'llmtor:coredns', '');
    await writeFile(
      join(pki, 'tokens.csv'),
      Object.values(tokens).map((t) => `${t.token},${t.user},${t.user}${t.groups ? `,"${t.groups}"` : ''}`).join('\n') + '\n',
      { mode: 0o600 },
    );
    const inner = `https://127.0.0.1:${API_PORT}`;
    for (const who of Object.keys(tokens)) {
      await writeFile(join(dir, 'config', `${who}.kubeconfig`), kubeconfig(inner, ca, tokens[who]!.user, tokens[who]!.token), { mode: 0o600 });
    }

    // --- network namespace and pod bridge
    log('network namespace');
    await createNodeNetwork(dir);

    // --- etcd + kube-apiserver (inside the namespace)
    log('etcd, kube-apiserver');
    await start('etcd', bin('etcd'), [
      '--name=llmtor-node',
      `--data-dir=${join(dir, 'etcd')}`,
      '--listen-client-urls=http://127.0.0.1:2379',
      '--advertise-client-urls=http://127.0.0.1:2379',
      '--listen-peer-urls=http://127.0.0.1:2380',
      '--initial-advertise-peer-urls=http://127.0.0.1:2380',
      '--initial-cluster=llmtor-node=http://127.0.0.1:2380',
      '--unsafe-no-fsync',
      '--log-level=warn',
      '--quota-backend-bytes=2147483648',
    ]);
    await start('kube-apiserver', bin('kube-apiserver'), [
      '--etcd-servers=http://127.0.0.1:2379',
      '--bind-address=0.0.0.0', // the namespace's addresses only: loopback and the bridge
      `--advertise-address=${NODE_IP}`,
      `--secure-port=${API_PORT}`,
      `--cert-dir=${join(pki, 'apiserver-certs')}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${ca}`,
      `--kubelet-client-certificate=${join(pki, 'apiserver-kubelet-client.crt')}`,
      `--kubelet-client-key=${join(pki, 'apiserver-kubelet-client.key')}`,
      '--kubelet-preferred-address-types=InternalIP',
      `--token-auth-file=${join(pki, 'tokens.csv')}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
    ]);
    // Host side of the relay: 127.0.0.1:<port> -> unix socket -> the namespace's 127.0.0.1:6443.
    const apiSock = join(dir, 'apiserver.sock');
    await start('api-relay-ns', 'socat', [`UNIX-LISTEN:${apiSock},fork,mode=600`, `TCP:127.0.0.1:${API_PORT}`]);
    const hostPort = await freePort();
    await start('api-relay-host', 'socat', [`TCP-LISTEN:${hostPort},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${apiSock}`], false);
    const server = `https://127.0.0.1:${hostPort}`;
    const admin = tokens.admin!.token;
    await waitUntil(
      'kube-apiserver',
      deadline,
      async () => (await httpsGet(`${server}/readyz`, caPem, admin)).status === 200 &&
        (await httpsGet(`${server}/api/v1/namespaces/default`, caPem, admin)).status === 200,
      () => why('kube-apiserver', 'etcd', 'api-relay-ns', 'api-relay-host'),
      deadProcs,
    );
    const apiServerReadyMs = Date.now() - t0;
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfig(server, ca, ADMIN_USER, admin), { mode: 0o600 });
    const kubectlHome = join(dir, 'home');
    const kubectl = (args: string[], o: { input?: string; timeoutMs?: number } = {}) =>
      run(kubectlPath, ['--kubeconfig', kubeconfigPath, ...args], {
        ...o,
        env: { ...process.env, HOME: kubectlHome, KUBECONFIG: kubeconfigPath, KUBECACHEDIR: join(kubectlHome, 'kube-cache') },
      });
    const rbac = await kubectl(['apply', '-f', '-'], { input: COREDNS_RBAC });
    if (rbac.code !== 0) throw new Error(`CoreDNS RBAC: ${rbac.stderr}`);

    // --- containerd + kubelet
    log('containerd, kubelet');
    const sock = join(dir, 'containerd', 'containerd.sock');
    const pauseName = (await readFile(join(imagesDir(kubeVersion), 'pause.name'), 'utf8')).trim();
    await writeFile(join(dir, 'config', 'containerd.toml'), containerdConfig(dir, sock, pauseName));
    await start('containerd', 'containerd', ['--config', join(dir, 'config', 'containerd.toml')]);
    await waitUntil('containerd', deadline, async () => (await run('ctr', ['--address', sock, 'version'], { timeoutMs: 5000 })).code === 0, () => why('containerd'), deadProcs);
    const ctr = (...a: string[]) => run('ctr', ['--address', sock, '-n', 'k8s.io', ...a], { timeoutMs: 120_000 });
    const imp = await ctr('images', 'import', join(imagesDir(kubeVersion), 'pause.tar'));
    if (imp.code !== 0) throw new Error(`importing the pause image: ${imp.stderr}`);
    for (const r of cgroupRoots()) await mkdir(join(r, CGROUP_ROOT), { recursive: true }).catch(() => undefined);
    await writeFile(join(dir, 'config', 'kubelet.yaml'), kubeletConfig(dir, sock, ca));
    await start('kubelet', bin('kubelet'), [
      `--config=${join(dir, 'config', 'kubelet.yaml')}`,
      `--kubeconfig=${join(dir, 'config', 'kubelet.kubeconfig')}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_IP}`,
      '--v=1',
    ]);

    // --- control-plane controllers, kube-proxy, CoreDNS
    log('scheduler, controller-manager, kube-proxy, coredns');
    const cfg = (who: string) => join(dir, 'config', `${who}.kubeconfig`);
    await start('kube-scheduler', bin('kube-scheduler'), [
      `--kubeconfig=${cfg('scheduler')}`,
      `--authentication-kubeconfig=${cfg('scheduler')}`,
      `--authorization-kubeconfig=${cfg('scheduler')}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--v=1',
    ]);
    await start('kube-controller-manager', bin('kube-controller-manager'), [
      `--kubeconfig=${cfg('controller-manager')}`,
      `--authentication-kubeconfig=${cfg('controller-manager')}`,
      `--authorization-kubeconfig=${cfg('controller-manager')}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${join(pki, 'sa.key')}`,
      `--root-ca-file=${ca}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--allocate-node-cidrs=false',
      '--controllers=*,-cloud-node-lifecycle-controller,-node-ipam-controller',
      '--v=1',
    ]);
    await writeFile(join(dir, 'config', 'kube-proxy.yaml'), kubeProxyConfig(cfg('proxy')));
    await start('kube-proxy', bin('kube-proxy'), [`--config=${join(dir, 'config', 'kube-proxy.yaml')}`, '--v=1']);
    await writeFile(join(dir, 'config', 'Corefile'), corefile(cfg('coredns')));
    await start('coredns', bin('coredns'), ['-conf', join(dir, 'config', 'Corefile')]);

    const core = async (path: string) => httpsGet(`${server}${path}`, caPem, admin);
    await waitUntil(
      'node Ready',
      deadline,
      async () => {
        const r = await core(`/api/v1/nodes/${NODE_NAME}`);
        if (r.status !== 200) return false;
        const n = JSON.parse(r.body) as { status?: { conditions?: { type: string; status: string }[] } };
        return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
      },
      () => why('kubelet', 'containerd'),
      deadProcs,
    );
    const nodeReadyMs = Date.now() - t0;
    // Plain HTTP/1.0 through socat inside the namespace (no HTTP client there of our own).
    const nsGet = async (port: number, path: string) => {
      const r = await inNs(['socat', '-T2', '-', `TCP:127.0.0.1:${port}`], { input: `GET ${path} HTTP/1.0\r\nHost: localhost\r\n\r\n`, timeoutMs: 5000 });
      return /^HTTP\/1\.[01] 200 /.test(r.stdout);
    };
    await waitUntil('kube-proxy', deadline, () => nsGet(10256, '/healthz'), () => why('kube-proxy'), deadProcs);
    await waitUntil('coredns', deadline, () => nsGet(8181, '/ready'), () => why('coredns'), deadProcs);
    await waitUntil('service account "default"', deadline, async () => (await core('/api/v1/namespaces/default/serviceaccounts/default')).status === 200, () => why('kube-controller-manager'), deadProcs);
    const dead = state.procs.filter((p) => !alive(p));
    if (dead.length) throw new Error(`exited during start: ${dead.map((p) => p.name).join(', ')}\n${await why(...dead.map((p) => p.name))}`);

    let stopped: Promise<void> | undefined;
    const node: KubeNode = {
      server,
      caPem,
      token: admin,
      kubeconfigPath,
      dir,
      kubeVersion,
      timings: { apiServerReadyMs, nodeReadyMs, totalMs: Date.now() - t0 },
      kubectl,
      exec: (cmd, o) => inNs(cmd, o),
      async importImage(archivePath, iopts = {}) {
        const r = await ctr('images', 'import', ...(iopts.baseName ? ['--base-name', iopts.baseName] : []), archivePath);
        if (r.code !== 0) throw new Error(`ctr images import ${archivePath}: ${r.stderr.trim()}`);
        return [...r.stdout.matchAll(/^unpacking (\S+) \(/gm)].map((m) => m[1]!);
      },
      exposeToHost: (host, port) => exposeToHost(dir, state, host, port),
      exposeToPods: (hostPort, nsPort) => exposeToPods(dir, state, hostPort, nsPort),
      attachNetns: (netns) => attachNetns(dir, state, netns),
      stop() {
        stopped ??= stopKubeNode({ dir, kubeVersion, log }).finally(() => releaseOwnership(dir));
        return stopped;
      },
    };
    await writeFile(
      join(dir, 'node.json'),
      JSON.stringify({ server, kubeconfigPath, netns: NODE_NETNS, bridge: NODE_BRIDGE, podCidr: POD_CIDR, nodeIp: NODE_IP, serviceCidr: SERVICE_CIDR, clusterDns: CLUSTER_DNS, containerdSocket: sock, timings: node.timings }, null, 2),
    );
    log(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${server}`);
    return node;
  } catch (err) {
    if (process.env.LLMTOR_NODE_KEEP_ON_FAILURE !== '1') await stopKubeNode({ dir, kubeVersion, log });
    releaseOwnership(dir);
    throw err;
  }
}


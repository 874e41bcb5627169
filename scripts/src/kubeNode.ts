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
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { ensureKubeBinaries, kubeBinDir, kubeBuildScript } from './kubeTestEnv.js';
import { freePort } from './ports.js';
import { runCommand, type CommandResult } from './runCommand.js';

// ----------------------------------------------------------------------------- fixed layout

/** The network namespace holding the whole node. */
export const NODE_NETNS = 'llmtor-node';
/** The pod bridge inside {@link NODE_NETNS}. */
export const NODE_BRIDGE = 'llmtor0';
/** Pod network: the bridge holds .1; host-local hands out .10-.199; .200-.250 are for {@link KubeNode.attachNetns}. */
export const POD_CIDR = '10.213.0.0/24';
export const NODE_IP = '10.213.0.1';
/** ClusterIPs; the `kubernetes` Service is 10.213.1.1. */
export const SERVICE_CIDR = '10.213.1.0/24';
/** CoreDNS listens on the bridge address; kubelet's clusterDNS. */
export const CLUSTER_DNS = NODE_IP;
export const NODE_NAME = 'llmtor-node';
const POD_RANGE = { start: '10.213.0.10', end: '10.213.0.199' };
const ATTACH_FIRST = 200;
const ATTACH_LAST = 250;
const API_PORT = 6443; // inside the namespace
const ADMIN_USER = 'llmtor-admin';
/** Host-wide sysctls the kubelet sets at start; saved by `up` and restored by `down`. */
const KUBELET_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

export function kubeNodeDir(): string {
  return process.env.LLMTOR_NODE_DIR || '/var/lib/llmtor-node';
}

/** OCI archives made by scripts/kube/build-node.sh: the sandbox's pause image and a static busybox for tests. */
function imagesDir(kubeVersion: string): string {
  return join(kubeBinDir(kubeVersion), '..', 'images');
}

/** Path and name of an image built by scripts/kube/build-node.sh ('busybox': httpd, wget, nslookup, sh). */
export function kubeNodeImage(which: 'pause' | 'busybox', kubeVersion = process.env.LLMTOR_KUBE_VERSION ?? 'v1.33.13'): { archive: string; name: string } {
  const d = imagesDir(kubeVersion);
  return { archive: join(d, `${which}.tar`), name: readFileSync(join(d, `${which}.name`), 'utf8').trim() };
}

// ----------------------------------------------------------------------------- types

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

interface ProcRecord {
  name: string;
  pid: number;
  /** /proc/<pid>/stat start time, so a recycled pid is never killed */
  start: string;
}

interface NodeState {
  procs: ProcRecord[];
  attached: { netns: string; ifName: string }[];
}

// ----------------------------------------------------------------------------- small helpers

const run = runCommand;

async function must(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

const NSENTER = ['--net=/run/netns/' + NODE_NETNS, '--'];

function inNs(cmd: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<KubectlResult> {
  return run('nsenter', [...NSENTER, ...cmd], opts);
}

/** Start time of a live process (undefined when gone or a zombie waiting for its reaper). */
function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' || f[0] === 'X' ? undefined : f[19];
  } catch {
    return undefined;
  }
}

function alive(p: ProcRecord): boolean {
  return procStart(p.pid) === p.start;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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

async function waitUntil(
  what: string,
  deadline: number,
  check: () => Promise<boolean>,
  why: () => Promise<string>,
  dead: () => string[] = () => [],
): Promise<void> {
  let last = '';
  while (Date.now() < deadline) {
    const gone = dead();
    if (gone.length) throw new Error(`${what}: ${gone.join(', ')} exited\n${await why()}`);
    try {
      if (await check()) return;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(250);
  }
  throw new Error(`${what}: not ready in time${last ? ` (${last})` : ''}\n${await why()}`);
}

async function tail(file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ----------------------------------------------------------------------------- PKI

async function makePki(dir: string): Promise<void> {
  const o = (args: string[]) => must('openssl', args, { timeoutMs: 20_000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const ca = join(dir, 'ca');
  await o(['req', '-x509', '-new', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '30', '-subj', '/CN=llmtor-node-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const leaf = async (name: string, subj: string, ext: string[]) => {
    const p = join(dir, name);
    await o(['req', '-new', ...ec, '-keyout', `${p}.key`, '-out', `${p}.csr`, '-subj', subj]);
    await writeFile(`${p}.ext`, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', ...ext, ''].join('\n'));
    await o(['x509', '-req', '-in', `${p}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${p}.crt`, '-days', '30', '-extfile', `${p}.ext`]);
  };
  await leaf('apiserver', '/CN=kube-apiserver', [
    'extendedKeyUsage=serverAuth',
    `subjectAltName=IP:127.0.0.1,IP:${NODE_IP},IP:10.213.1.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`,
  ]);
  // The API server's identity towards the kubelet (logs, exec, port-forward).
  await leaf('apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', ['extendedKeyUsage=clientAuth']);
  await rm(`${ca}.key`, { force: true }); // nothing else is signed with it
  // Service-account signing key (kube-apiserver signs, kube-controller-manager's token controller too).
  await o(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'sa.key')]);
  await o(['ec', '-in', join(dir, 'sa.key'), '-pubout', '-out', join(dir, 'sa.pub')]);
}

function kubeconfig(server: string, caFile: string, user: string, token: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'llmtor-node', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: 'llmtor-node', user, namespace: 'default' } }],
    'current-context': user,
  });
}

// ----------------------------------------------------------------------------- processes

function spawnDetached(dir: string, name: string, cmd: string, args: string[], netns: boolean): ProcRecord {
  const fd = openSync(join(dir, 'logs', `${name}.log`), 'a');
  try {
    const [c, a] = netns ? ['nsenter', [...NSENTER, cmd, ...args]] : [cmd, args];
    const opts: SpawnOptions = {
      detached: true,
      stdio: ['ignore', fd, fd],
      // Never pull or send anything through a proxy; the namespace has no route out anyway.
      env: { PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ''}`, HOME: join(dir, 'home'), NO_PROXY: '*' },
    };
    const child = spawn(c, a, opts);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${name}`);
    // nsenter execs the command, so the pid is the component itself.
    let start = procStart(child.pid);
    for (let i = 0; i < 20 && start === undefined; i++) start = procStart(child.pid);
    return { name, pid: child.pid, start: start ?? '?' };
  } finally {
    closeSync(fd);
  }
}

async function killAll(procs: ProcRecord[], graceMs: number, log: (l: string) => void = () => undefined): Promise<void> {
  const live = procs.filter(alive);
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (live.some(alive) && Date.now() < deadline) await sleep(100);
  const stubborn = live.filter(alive);
  if (stubborn.length) log(`SIGKILL after ${graceMs} ms: ${stubborn.map((p) => p.name).join(', ')}`);
  for (const p of stubborn) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const hard = Date.now() + 5000;
  while (live.some(alive) && Date.now() < hard) await sleep(50);
}

/** Every pid with an argument naming a path under `dir` (components, shims by our containerd socket, relays). */
function pidsReferencing(dir: string): ProcRecord[] {
  const out: ProcRecord[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmdline.split('\0').some((a) => a.includes(`${dir}/`))) {
        const start = procStart(Number(e));
        if (start) out.push({ name: 'shim', pid: Number(e), start });
      }
    } catch {
      /* gone */
    }
  }
  return out;
}

/** cgroup v1 hierarchies (or the unified one) that exist on this host. */
function cgroupRoots(): string[] {
  const roots: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    if (f[sep + 1] === 'cgroup' || f[sep + 1] === 'cgroup2') roots.push(f[4]!);
  }
  return roots;
}

const CGROUP_ROOT = 'llmtor-node';

/** Pids in our cgroup subtree (containers, pause), from any hierarchy. */
function cgroupPids(): ProcRecord[] {
  const pids = new Set<number>();
  const walk = (d: string) => {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      /* gone */
    }
  };
  for (const r of cgroupRoots()) if (existsSync(join(r, CGROUP_ROOT))) walk(join(r, CGROUP_ROOT));
  return [...pids].flatMap((pid) => {
    const start = procStart(pid);
    return start ? [{ name: 'container', pid, start }] : [];
  });
}

async function removeCgroups(): Promise<void> {
  const rmTree = async (d: string) => {
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) await rmTree(join(d, e));
    for (let i = 0; i < 20; i++) {
      try {
        await rmdir(d);
        return;
      } catch {
        /* busy */
      }
      await sleep(100);
    }
  };
  for (const r of cgroupRoots()) if (existsSync(join(r, CGROUP_ROOT))) await rmTree(join(r, CGROUP_ROOT));
}

/** Mount points at or below `prefix`, deepest first. */
function mountsUnder(prefix: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const p = mp.replace(/\\040/g, ' ');
    if (p === prefix || p.startsWith(prefix + '/')) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

async function unmountAll(prefix: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mps = mountsUnder(prefix);
    if (mps.length === 0) return;
    for (const mp of mps) {
      const r = await run('umount', [mp], { timeoutMs: 10_000 });
      if (r.code !== 0) await run('umount', ['-l', mp], { timeoutMs: 10_000 });
    }
  }
}

/**
 * `<dir>.lock` holds "<pid> <start time>" of the process that owns the node. Created with
 * O_EXCL, so two callers never both win; a lock whose process is gone is stale.
 */
async function takeOwnership(dir: string, waitMs: number, log: (l: string) => void): Promise<void> {
  const lock = `${dir}.lock`;
  const me = `${process.pid} ${procStart(process.pid) ?? '?'}`;
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    try {
      writeFileSync(lock, me, { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = '';
    try {
      holder = readFileSync(lock, 'utf8').trim();
    } catch {
      continue; // released meanwhile
    }
    const [pid, start] = holder.split(' ');
    if (holder === me) return;
    if (!pid || !start || procStart(Number(pid)) !== start) {
      await rm(lock, { force: true }); // stale: its owner is gone
      continue;
    }
    if (Date.now() > deadline) throw new Error(`the kube node in ${dir} is in use by pid ${pid} (lock ${lock}); waited ${waitMs} ms`);
    if (!told) log(`waiting for pid ${pid}, which is using the node`);
    told = true;
    await sleep(2000);
  }
}

function releaseOwnership(dir: string): void {
  const lock = `${dir}.lock`;
  try {
    if (readFileSync(lock, 'utf8').trim().split(' ')[0] === String(process.pid)) rmSync(lock, { force: true });
  } catch {
    /* not ours or gone */
  }
}

async function readSysctl(k: string): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/sys/${k}`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function loadState(dir: string): Promise<NodeState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

async function saveState(dir: string, s: NodeState): Promise<void> {
  await writeFile(join(dir, 'state.json.tmp'), JSON.stringify(s, null, 2));
  await rename(join(dir, 'state.json.tmp'), join(dir, 'state.json'));
}

/**
 * True when a socket listens on ip:port in the network namespace of `pid` (default: ours),
 * read from /proc/<pid>/net/tcp: no probe connection.
 */
function listensOn(ip: string, port: number, pid: number | 'self' = 'self'): boolean {
  const hexIp = ip.split('.').map((o) => Number(o).toString(16).toUpperCase().padStart(2, '0')).reverse().join('');
  const want = `${hexIp}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    return readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').some((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === want && f[3] === '0A';
    });
  } catch {
    return false;
  }
}

function listensOnLoopback(port: number): boolean {
  return listensOn('127.0.0.1', port);
}

function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

// ----------------------------------------------------------------------------- down

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

  for (const a of state?.attached ?? []) {
    await run('ip', ['-n', a.netns, 'link', 'del', a.ifName], { timeoutMs: 10_000 });
  }
  log('unmounting');
  await unmountAll(dir);
  if (netnsExists(NODE_NETNS)) {
    const r = await run('ip', ['netns', 'del', NODE_NETNS], { timeoutMs: 10_000 });
    if (r.code !== 0) {
      await run('umount', ['-l', `/run/netns/${NODE_NETNS}`]);
      await rm(`/run/netns/${NODE_NETNS}`, { force: true });
    }
  }
  await removeCgroups();
  // The host's values, saved outside the run dir by the first `up` (so a lost state file
  // cannot lose them), restored, then forgotten.
  const saved = `${dir}.host-sysctls.json`;
  let sysctls: Record<string, string> = {};
  try {
    sysctls = JSON.parse(await readFile(saved, 'utf8')) as Record<string, string>;
  } catch {
    /* none saved */
  }
  for (const [k, v] of Object.entries(sysctls)) {
    try {
      writeFileSync(`/proc/sys/${k}`, v);
    } catch {
      /* read-only here */
    }
  }
  await rm(saved, { force: true });
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
  const sysctls: Record<string, string> = {};
  for (const k of KUBELET_SYSCTLS) {
    const v = await readSysctl(k);
    if (v !== undefined) sysctls[k] = v;
  }
  // Written before anything runs; the down above restored and removed any earlier copy.
  await writeFile(`${dir}.host-sysctls.json`, JSON.stringify(sysctls, null, 2));
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
    await must('ip', ['netns', 'add', NODE_NETNS]);
    const ipn = (...a: string[]) => must('ip', ['-n', NODE_NETNS, ...a]);
    await ipn('link', 'set', 'lo', 'up');
    await ipn('link', 'add', NODE_BRIDGE, 'type', 'bridge');
    await ipn('addr', 'add', `${NODE_IP}/24`, 'dev', NODE_BRIDGE);
    await ipn('link', 'set', NODE_BRIDGE, 'up');
    // ClusterIPs from processes in the namespace (kube-proxy's OUTPUT rules need a route first).
    await ipn('route', 'add', SERVICE_CIDR, 'dev', NODE_BRIDGE, 'src', NODE_IP);
    for (const [k, v] of [
      ['net.ipv4.ip_forward', '1'],
      ['net.bridge.bridge-nf-call-iptables', '1'],
      ['net.ipv4.conf.all.route_localnet', '1'],
    ]) {
      await must('nsenter', [...NSENTER, 'sysctl', '-qw', `${k}=${v}`]);
    }
    await writeFile(
      join(dir, 'cni', 'net.d', '10-llmtor.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'llmtor',
        plugins: [
          {
            type: 'bridge',
            bridge: NODE_BRIDGE,
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR, rangeStart: POD_RANGE.start, rangeEnd: POD_RANGE.end, gateway: NODE_IP }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(dir, 'cni', 'ipam') },
          },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      }),
    );

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
      async exposeToHost(host, port) {
        const id = randomBytes(4).toString('hex');
        const s = join(dir, `expose-${id}.sock`);
        const nsSide = spawnDetached(dir, `expose-${id}-ns`, 'socat', [`UNIX-LISTEN:${s},fork,mode=600`, `TCP:${host}:${port}`], true);
        const hp = await freePort();
        const hostSide = spawnDetached(dir, `expose-${id}-host`, 'socat', [`TCP-LISTEN:${hp},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${s}`], false);
        state.procs.push(nsSide, hostSide);
        await saveState(dir, state);
        // Ready when the namespace side made its socket and the host side listens (no probe connection).
        for (let i = 0; i < 250 && !(existsSync(s) && listensOnLoopback(hp)); i++) await sleep(20);
        if (!listensOnLoopback(hp)) throw new Error(`relay to ${host}:${port} did not start`);
        return {
          port: hp,
          close: async () => {
            await killAll([nsSide, hostSide], 3000);
            await rm(s, { force: true });
          },
        };
      },
      async exposeToPods(hostPort, nsPort = hostPort) {
        const id = randomBytes(4).toString('hex');
        const s = join(dir, `topods-${id}.sock`);
        const hostSide = spawnDetached(dir, `topods-${id}-host`, 'socat', [`UNIX-LISTEN:${s},fork,mode=600`, `TCP:127.0.0.1:${hostPort}`], false);
        const nsSide = spawnDetached(dir, `topods-${id}-ns`, 'socat', [`TCP-LISTEN:${nsPort},bind=${NODE_IP},reuseaddr,fork`, `UNIX-CONNECT:${s}`], true);
        state.procs.push(nsSide, hostSide);
        await saveState(dir, state);
        for (let i = 0; i < 250 && !(existsSync(s) && listensOn(NODE_IP, nsPort, nsSide.pid)); i++) await sleep(20);
        if (!listensOn(NODE_IP, nsPort, nsSide.pid)) throw new Error(`relay from ${NODE_IP}:${nsPort} to host port ${hostPort} did not start`);
        return {
          host: NODE_IP,
          port: nsPort,
          close: async () => {
            await killAll([nsSide, hostSide], 3000);
            await rm(s, { force: true });
          },
        };
      },
      async attachNetns(netns) {
        const used = new Set(state.attached.map((a) => a.ifName));
        let n = ATTACH_FIRST;
        while (used.has(`llmtor-a${n}`) && n <= ATTACH_LAST) n++;
        if (n > ATTACH_LAST) throw new Error('no free attach address');
        const ifName = `llmtor-a${n}`;
        const peer = `llmtor-b${n}`;
        const ip = `10.213.0.${n}`;
        await ipn('link', 'add', peer, 'type', 'veth', 'peer', 'name', ifName, 'netns', netns);
        await ipn('link', 'set', peer, 'master', NODE_BRIDGE, 'up');
        const ipx = (...a: string[]) => must('ip', ['-n', netns, ...a]);
        await ipx('addr', 'add', `${ip}/24`, 'dev', ifName);
        await ipx('link', 'set', ifName, 'up');
        await ipx('route', 'add', SERVICE_CIDR, 'via', NODE_IP);
        state.attached.push({ netns, ifName });
        await saveState(dir, state);
        return ip;
      },
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

// ----------------------------------------------------------------------------- configs

const COREDNS_RBAC = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "llmtor:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "llmtor:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "llmtor:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "llmtor:coredns"}
`;

function containerdConfig(dir: string, sock: string, pauseImage: string): string {
  const root = join(dir, 'containerd', 'root');
  const st = join(dir, 'containerd', 'state');
  return `version = 2
root = "${root}"
state = "${st}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${sock}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  enable_selinux = false
  # pod network namespaces under the state dir, so down finds and unmounts them
  netns_mounts_under_state_dir = true
  # This VM drops CAP_SYS_RESOURCE from every bounding set, so no process may lower its
  # oom_score_adj below its parent's; clamp the kubelet's negative scores (pause -998,
  # Guaranteed pods -997) to containerd's own instead of failing every sandbox.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${join(st, 'runc')}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${join(dir, 'cni', 'net.d')}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(root, 'opt')}"
`;
}

function kubeletConfig(dir: string, sock: string, ca: string): string {
  return JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: NODE_IP,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: ca } },
    authorization: { mode: 'Webhook' },
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${CGROUP_ROOT}`,
    failSwapOn: false,
    containerRuntimeEndpoint: `unix://${sock}`,
    clusterDomain: 'cluster.local',
    clusterDNS: [CLUSTER_DNS],
    // Pods get only the cluster DNS: nothing of the host's resolver configuration.
    resolvConf: '',
    podLogsDir: join(dir, 'pod-logs'),
    maxPods: 60,
    serializeImagePulls: false,
    // Imported images are never garbage-collected or evicted for disk pressure on a test node.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%', 'nodefs.inodesFree': '1%' },
    nodeStatusUpdateFrequency: '5s',
    syncFrequency: '10s',
    fileCheckFrequency: '10s',
    rotateCertificates: false,
    serverTLSBootstrap: false,
    protectKernelDefaults: false,
    failCgroupV1: false,
    shutdownGracePeriod: '0s',
  });
}

function kubeProxyConfig(kubeconfigPath: string): string {
  return JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: kubeconfigPath },
    mode: 'iptables',
    hostnameOverride: NODE_NAME,
    clusterCIDR: POD_CIDR,
    bindAddress: NODE_IP,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    // Leave the host-wide conntrack settings alone (0 = do not set).
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s', udpTimeout: '0s', udpStreamTimeout: '0s' },
    iptables: { minSyncPeriod: '1s', syncPeriod: '30s', masqueradeAll: false },
    nodePortAddresses: [POD_CIDR],
  });
}

function corefile(kubeconfigPath: string): string {
  // Only cluster.local and the reverse zones; every other name is refused (nothing is
  // forwarded anywhere: the node talks to no resolver outside the machine).
  return `cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${CLUSTER_DNS}
    errors
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfigPath}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`;
}

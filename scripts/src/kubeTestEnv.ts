/**
 * A real Kubernetes API server for tests: etcd + kube-apiserver built from the Go
 * module proxy by `scripts/kube/build.sh`, started on loopback with free ports and a
 * temporary data directory. See docs/kube-test-env.md.
 *
 *   const env = await startKubeTestEnv();
 *   const kc = new KubeConfig(); kc.loadFromOptions(env.kubeConfigOptions);
 *   await env.kubectl(['get', 'ns']);
 *   await env.stop();
 *
 * Only the API server runs: no controller-manager (no garbage collection of
 * ownerReferences, namespaces stay Terminating, no Deployment -> Pod), no scheduler,
 * no kubelet. That is what an operator needs to be tested against: real storage,
 * validation (CRD OpenAPI schemas, status subresources), RBAC, watches, Leases,
 * server-side apply and resourceVersion conflicts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, rmSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { runCommand, type CommandResult } from './runCommand.js';
import { makeTestPki } from './testPki.js';


/** Kubernetes version built and started by default (kubectl at /usr/bin is 1.32 + dispatcher up to 1.33). */
export const DEFAULT_KUBE_VERSION = 'v1.33.13';
/** etcd version built by default (the one Kubernetes 1.33 is tested against). */
export const DEFAULT_ETCD_VERSION = 'v3.5.21';

/** Shape accepted by `KubeConfig.loadFromOptions` of `@kubernetes/client-node` 1.x. */
export interface KubeConfigOptions {
  clusters: { name: string; server: string; caData?: string; skipTLSVerify: boolean }[];
  users: { name: string; token?: string }[];
  contexts: { name: string; cluster: string; user: string; namespace?: string }[];
  currentContext: string;
}

export type KubectlResult = CommandResult;

export interface KubeTestUser {
  /** user name as the API server sees it */
  name: string;
  /** groups, e.g. ['system:masters'] for a cluster admin; [] for an RBAC-limited user */
  groups: string[];
  /** bearer token; generated when absent */
  token?: string;
}

export interface KubeTestEnvOptions {
  /** Kubernetes version (selects the cache dir). Default {@link DEFAULT_KUBE_VERSION} or $LLMTOR_KUBE_VERSION. */
  kubeVersion?: string;
  /**
   * Directory holding `kube-apiserver` and `etcd`. Default $LLMTOR_KUBE_BIN_DIR or
   * `${LLMTOR_CACHE:-~/.cache/llmtor}/kube/<version>/bin`.
   */
  binDir?: string;
  /**
   * Run scripts/kube/build.sh when the binaries are missing (several minutes on 2 cores).
   * Default true unless $LLMTOR_KUBE_NO_BUILD=1; when false a missing binary throws.
   */
  build?: boolean;
  /** kubectl binary, default $KUBECTL or /usr/bin/kubectl */
  kubectlPath?: string;
  /** 'RBAC' (default, as on a real cluster) or 'AlwaysAllow' */
  authorizationMode?: 'RBAC' | 'AlwaysAllow';
  /** default namespace in the kubeconfig / client options; default 'default' */
  namespace?: string;
  /** additional static-token users (e.g. a user without system:masters to test RBAC) */
  users?: KubeTestUser[];
  /** appended to the kube-apiserver command line */
  extraApiServerArgs?: string[];
  /** time allowed for etcd + kube-apiserver to become ready; default 90 s */
  readyTimeoutMs?: number;
  /** keep the temp dir (logs, etcd data) after stop(); default false */
  keepDir?: boolean;
}

export interface KubeTestEnv {
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  /** PEM of the CA that signed the API server's serving certificate */
  readonly caPem: string;
  /** admin bearer token (user `llmtor-admin`, group `system:masters`) */
  readonly token: string;
  /** tokens of the extra users, by name */
  readonly userTokens: Readonly<Record<string, string>>;
  /** a kubeconfig file for `kubectl --kubeconfig` (admin user) */
  readonly kubeconfigPath: string;
  /** for `new KubeConfig().loadFromOptions(…)` (admin user) */
  readonly kubeConfigOptions: KubeConfigOptions;
  /** client options for another static-token user (see {@link KubeTestEnvOptions.users}) or any bearer token */
  kubeConfigOptionsFor(userOrToken: string): KubeConfigOptions;
  /** `kubectl --kubeconfig <kubeconfigPath> …args`; never rejects on a non-zero exit */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** `http://127.0.0.1:<port>` of etcd */
  readonly etcdEndpoint: string;
  /** temp dir with logs (etcd.log, kube-apiserver.log), certs and etcd data */
  readonly dir: string;
  readonly kubeVersion: string;
  /** process ids of the running components */
  readonly pids: { etcd: number; apiServer: number };
  /** milliseconds from start to: etcd healthy, API server /readyz, whole call */
  readonly timings: { etcdReadyMs: number; apiServerReadyMs: number; totalMs: number };
  /** last lines of the component logs, for failure messages */
  logTail(component: 'etcd' | 'kube-apiserver', lines?: number): Promise<string>;
  /** stop both processes (SIGTERM, SIGKILL after 5 s) and remove the temp dir; idempotent */
  stop(): Promise<void>;
}

// ----------------------------------------------------------------------------- binaries

function cacheRoot(): string {
  return process.env.LLMTOR_CACHE || join(homedir(), '.cache', 'llmtor');
}

export function kubeBinDir(kubeVersion: string = defaultVersion()): string {
  return process.env.LLMTOR_KUBE_BIN_DIR || join(cacheRoot(), 'kube', kubeVersion, 'bin');
}

function defaultVersion(): string {
  return process.env.LLMTOR_KUBE_VERSION || DEFAULT_KUBE_VERSION;
}

/** Path of scripts/kube/build.sh (works from src/ through ts and from dist/src/). */
export function kubeBuildScript(): string {
  for (const rel of ['../../kube/build.sh', '../kube/build.sh']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('scripts/kube/build.sh not found next to kubeTestEnv');
}

async function isExecutable(p: string): Promise<boolean> {
  try {
    await access(p, 1 /* X_OK */);
    return true;
  } catch {
    return false;
  }
}

/** True when kube-apiserver and etcd are present (no build). */
export async function kubeBinariesPresent(binDir: string = kubeBinDir()): Promise<boolean> {
  return (await isExecutable(join(binDir, 'kube-apiserver'))) && (await isExecutable(join(binDir, 'etcd')));
}

/**
 * Make sure kube-apiserver and etcd exist, building them with scripts/kube/build.sh if
 * allowed. Returns the bin dir. The build takes ~4-5 min on 2 cores with a warm Go module
 * cache; concurrent callers are serialised by a lock in build.sh.
 */
export async function ensureKubeBinaries(opts: { kubeVersion?: string; binDir?: string; build?: boolean } = {}): Promise<string> {
  const kubeVersion = opts.kubeVersion ?? defaultVersion();
  const binDir = opts.binDir ?? kubeBinDir(kubeVersion);
  if (await kubeBinariesPresent(binDir)) return binDir;
  const build = opts.build ?? process.env.LLMTOR_KUBE_NO_BUILD !== '1';
  if (!build || opts.binDir !== undefined || process.env.LLMTOR_KUBE_BIN_DIR) {
    throw new Error(
      `kube-apiserver/etcd not found in ${binDir}; run scripts/kube/build.sh (KUBE_VERSION=${kubeVersion})`,
    );
  }
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', [kubeBuildScript()], {
      env: { ...process.env, KUBE_VERSION: kubeVersion },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-8000);
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`scripts/kube/build.sh failed (exit ${code}):\n${err}`)),
    );
  });
  if (!(await kubeBinariesPresent(binDir))) throw new Error(`build finished but binaries are missing in ${binDir}`);
  return binDir;
}

// ----------------------------------------------------------------------------- processes

/** Children still running, killed synchronously if the test process exits without stop(). */
const live = new Set<{ procs: ChildProcess[]; dir: string; keep: boolean }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const env of live) {
      for (const p of env.procs) {
        if (p.exitCode === null && p.signalCode === null) {
          try {
            p.kill('SIGKILL');
          } catch {
            /* already gone */
          }
        }
      }
      if (!env.keep) {
        try {
          rmSync(env.dir, { recursive: true, force: true });
        } catch {
          /* best effort */
        }
      }
    }
  });
}

/** `setpriv --pdeathsig KILL` makes the kernel kill the child if this process dies (even by SIGKILL). */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

function spawnComponent(bin: string, args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
    return spawn(cmd, argv, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

function exited(p: ChildProcess): boolean {
  return p.exitCode !== null || p.signalCode !== null;
}

async function terminate(p: ChildProcess, graceMs = 5000): Promise<void> {
  if (exited(p)) return;
  const done = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (!exited(p)) p.kill('SIGKILL');
  }, graceMs);
  await done;
  clearTimeout(timer);
}

/** Remove temp dirs left by test processes that died without cleaning up. */
function sweepStaleDirs(): void {
  try {
    for (const name of readdirSync(tmpdir())) {
      const m = /^llmtor-kube-(\d+)-/.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid) continue;
      try {
        process.kill(pid, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(tmpdir(), name), { recursive: true, force: true });
      }
    }
  } catch {
    /* best effort */
  }
}

export { freePort };

function httpStatus(
  url: string,
  opts: { ca?: string; token?: string; timeoutMs?: number; method?: string; json?: unknown } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
    const payload = opts.json === undefined ? undefined : JSON.stringify(opts.json);
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const method = opts.method ?? 'GET';
    const cb = (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req =
      u.protocol === 'https:'
        ? httpsRequest(u, { method, headers, ca: opts.ca, agent: false, timeout: opts.timeoutMs ?? 2000 }, cb)
        : httpRequest(u, { method, headers, agent: false, timeout: opts.timeoutMs ?? 2000 }, cb);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  deadline: number,
  procs: ChildProcess[],
  describeFailure: () => Promise<string>,
): Promise<void> {
  let lastErr = '';
  for (;;) {
    const dead = procs.find(exited);
    if (dead) {
      throw new Error(`${what}: a component exited early (code ${dead.exitCode}, signal ${dead.signalCode})\n${await describeFailure()}`);
    }
    try {
      if (await check()) return;
    } catch (e) {
      lastErr = (e as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready in time (${lastErr})\n${await describeFailure()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ----------------------------------------------------------------------------- TLS

// ----------------------------------------------------------------------------- main

const ADMIN_USER = 'llmtor-admin';
const CLUSTER_NAME = 'llmtor-test';

function csvField(s: string): string {
  if (/[",\n]/.test(s)) return `"${s.replace(/"/g, '""')}"`;
  return s;
}

export async function startKubeTestEnv(opts: KubeTestEnvOptions = {}): Promise<KubeTestEnv> {
  const t0 = Date.now();
  const kubeVersion = opts.kubeVersion ?? defaultVersion();
  const binDir = await ensureKubeBinaries({
    kubeVersion,
    ...(opts.binDir !== undefined ? { binDir: opts.binDir } : {}),
    ...(opts.build !== undefined ? { build: opts.build } : {}),
  });
  const kubectlPath = opts.kubectlPath ?? process.env.KUBECTL ?? '/usr/bin/kubectl';
  const namespace = opts.namespace ?? 'default';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;

  installExitHook();
  sweepStaleDirs();
  const dir = await mkdtemp(join(tmpdir(), `llmtor-kube-${process.pid}-`));
  const procs: ChildProcess[] = [];
  const handle = { procs, dir, keep: opts.keepDir ?? false };
  live.add(handle);
  const etcdLog = join(dir, 'etcd.log');
  const apiLog = join(dir, 'kube-apiserver.log');

  const tail = async (file: string, lines = 40) => {
    try {
      return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };

  const cleanup = async () => {
    await Promise.all(procs.slice().reverse().map((p) => terminate(p)));
    live.delete(handle);
    if (!handle.keep) await rm(dir, { recursive: true, force: true });
  };

  try {
    // --- credentials and certificates
    const pki = await makeTestPki(dir, {
      caName: 'llmtor-kube-test-ca',
      serverName: 'kube-apiserver',
      altNames: ['IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local', 'IP:10.0.0.1'],
      days: 7,
    });
    const sa = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await writeFile(join(dir, 'sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(join(dir, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
    const token = randomBytes(24).toString('base64url');
    const userTokens: Record<string, string> = {};
    const tokenLines = [`${token},${ADMIN_USER},${ADMIN_USER},${csvField('system:masters')}`];
    for (const u of opts.users ?? []) {
      const t = u.token ?? randomBytes(24).toString('base64url');
      userTokens[u.name] = t;
      tokenLines.push(`${t},${csvField(u.name)},${csvField(u.name)}${u.groups.length ? ',' + csvField(u.groups.join(',')) : ''}`);
    }
    await writeFile(join(dir, 'tokens.csv'), tokenLines.join('\n') + '\n', { mode: 0o600 });

    // --- etcd
    const [etcdPort, peerPort, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const etcdEndpoint = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    await mkdir(join(dir, 'etcd-data'), { mode: 0o700 });
    procs.push(
      spawnComponent(
        join(binDir, 'etcd'),
        [
          '--name=llmtor-test',
          `--data-dir=${join(dir, 'etcd-data')}`,
          `--listen-client-urls=${etcdEndpoint}`,
          `--advertise-client-urls=${etcdEndpoint}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=llmtor-test=${peerUrl}`,
          '--initial-cluster-state=new',
          '--unsafe-no-fsync', // test data: no fsync, much faster on shared disks
          '--log-level=warn',
          '--logger=zap',
          '--log-outputs=stderr',
          '--quota-backend-bytes=1073741824',
        ],
        etcdLog,
      ),
    );
    const deadline = Date.now() + readyTimeoutMs;
    await waitFor(
      'etcd',
      async () => {
        const r = await httpStatus(`${etcdEndpoint}/health`);
        return r.status === 200 && r.body.includes('"health":"true"');
      },
      deadline,
      procs,
      async () => `--- etcd.log\n${await tail(etcdLog)}`,
    );
    const etcdReadyMs = Date.now() - t0;

    // --- kube-apiserver
    const server = `https://127.0.0.1:${apiPort}`;
    procs.push(
      spawnComponent(
        join(binDir, 'kube-apiserver'),
        [
          `--etcd-servers=${etcdEndpoint}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          `--cert-dir=${join(dir, 'certs')}`,
          `--tls-cert-file=${pki.certFile}`,
          `--tls-private-key-file=${pki.keyFile}`,
          `--token-auth-file=${join(dir, 'tokens.csv')}`,
          `--authorization-mode=${opts.authorizationMode ?? 'RBAC'}`,
          `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
          `--service-account-key-file=${join(dir, 'sa.pub')}`,
          `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
          '--service-cluster-ip-range=10.0.0.0/24',
          // 127.0.0.1 may not be an Endpoints address; nothing routes to the service anyway.
          '--endpoint-reconciler-type=none',
          '--profiling=false',
          '--enable-priority-and-fairness=false',
          '--v=1',
          ...(opts.extraApiServerArgs ?? []),
        ],
        apiLog,
      ),
    );
    await waitFor(
      'kube-apiserver',
      async () => {
        const r = await httpStatus(`${server}/readyz`, { ca: pki.caPem, token });
        if (r.status !== 200) return false;
        // The default namespace is created by a post-start hook; wait for it too.
        const ns = await httpStatus(`${server}/api/v1/namespaces/default`, { ca: pki.caPem, token });
        return ns.status === 200;
      },
      deadline,
      procs,
      async () => `--- kube-apiserver.log\n${await tail(apiLog)}\n--- etcd.log\n${await tail(etcdLog, 10)}`,
    );
    const apiServerReadyMs = Date.now() - t0;
    if (namespace !== 'default') {
      const r = await httpStatus(`${server}/api/v1/namespaces`, {
        ca: pki.caPem,
        token,
        method: 'POST',
        json: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } },
      });
      if (r.status !== 201 && r.status !== 409) throw new Error(`creating namespace ${namespace}: ${r.status} ${r.body}`);
    }

    // --- client configuration
    const caData = Buffer.from(pki.caPem).toString('base64');
    const optionsFor = (user: string, tok: string): KubeConfigOptions => ({
      clusters: [{ name: CLUSTER_NAME, server, caData, skipTLSVerify: false }],
      users: [{ name: user, token: tok }],
      contexts: [{ name: `${user}@${CLUSTER_NAME}`, cluster: CLUSTER_NAME, user, namespace }],
      currentContext: `${user}@${CLUSTER_NAME}`,
    });
    const kubeConfigOptions = optionsFor(ADMIN_USER, token);
    const kubeconfigPath = join(dir, 'kubeconfig');
    // JSON is valid YAML; kubectl and client-node read it as a kubeconfig.
    await writeFile(
      kubeconfigPath,
      JSON.stringify(
        {
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: CLUSTER_NAME, cluster: { server, 'certificate-authority-data': caData } }],
          users: [{ name: ADMIN_USER, user: { token } }],
          contexts: [{ name: `${ADMIN_USER}@${CLUSTER_NAME}`, context: { cluster: CLUSTER_NAME, user: ADMIN_USER, namespace } }],
          'current-context': `${ADMIN_USER}@${CLUSTER_NAME}`,
          preferences: {},
        },
        null,
        2,
      ),
      { mode: 0o600 },
    );
    const kubectlHome = join(dir, 'kubectl-home');
    await mkdir(kubectlHome, { recursive: true });

    let stopped: Promise<void> | undefined;
    const env: KubeTestEnv = {
      server,
      caPem: pki.caPem,
      token,
      userTokens,
      kubeconfigPath,
      kubeConfigOptions,
      kubeConfigOptionsFor(userOrToken: string) {
        const t = userTokens[userOrToken];
        return t !== undefined ? optionsFor(userOrToken, t) : optionsFor('token-user', userOrToken);
      },
      kubectl(args, kopts = {}) {
        return runCommand(kubectlPath, ['--kubeconfig', kubeconfigPath, ...args], {
          ...kopts,
          env: { ...process.env, HOME: kubectlHome, KUBECONFIG: kubeconfigPath, KUBECACHEDIR: join(kubectlHome, 'cache') },
        });
      },
      etcdEndpoint,
      dir,
      kubeVersion,
      pids: { etcd: procs[0]!.pid ?? -1, apiServer: procs[1]!.pid ?? -1 },
      timings: { etcdReadyMs, apiServerReadyMs, totalMs: Date.now() - t0 },
      logTail: (component, lines) => tail(component === 'etcd' ? etcdLog : apiLog, lines),
      stop() {
        stopped ??= cleanup();
        return stopped;
      },
    };
    return env;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** `kubectl version --client` of the configured kubectl, for diagnostics. */
export function kubectlClientVersion(kubectlPath = process.env.KUBECTL ?? '/usr/bin/kubectl'): string {
  const r = spawnSync(kubectlPath, ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  try {
    return (JSON.parse(r.stdout) as { clientVersion: { gitVersion: string } }).clientVersion.gitVersion;
  } catch {
    return 'unknown';
  }
}

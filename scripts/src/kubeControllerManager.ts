/**
 * A real kube-controller-manager next to the API server of kubeTestEnv.ts, for tests
 * that need a controller the API server alone does not run — above all the garbage
 * collector, which deletes objects whose owner references point at a deleted owner.
 *
 *   const env = await startKubeTestEnv();
 *   const kcm = await startControllerManager(env, { controllers: ['garbagecollector'] });
 *   …
 *   await kcm.stop();
 *
 * Built by scripts/kube/build-node.sh with the other node binaries (same module set-up and
 * version as kube-apiserver, same cache directory). It talks to the API
 * server with the test env's admin kubeconfig (no service-account credentials), without
 * leader election, and serves its own /healthz on a free loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kubeBinDir, type KubeTestEnv } from './kubeTestEnv.js';
import { freePort } from './ports.js';

export interface ControllerManagerOptions {
  /** `--controllers` list, e.g. ['garbagecollector']; default only the garbage collector. */
  controllers?: string[];
  /** Build with scripts/kube/build-node.sh when missing (default true; minutes on 2 cores). */
  build?: boolean;
  readyTimeoutMs?: number;
}

export interface RunningControllerManager {
  readonly pid: number;
  readonly logFile: string;
  logTail(lines?: number): Promise<string>;
  stop(): Promise<void>;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** scripts/kube/build-node.sh, from src/ or from dist/src/. */
function buildScript(): string {
  for (const dir of ['../../kube/', '../kube/']) {
    const p = fileURLToPath(new URL(dir + 'build-node.sh', import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('scripts/kube/build-node.sh not found');
}

/** Path of the kube-controller-manager binary, built first when missing. */
export async function ensureControllerManager(kubeVersion: string, build = true): Promise<string> {
  const bin = join(kubeBinDir(kubeVersion), 'kube-controller-manager');
  try {
    await access(bin);
    return bin;
  } catch {
    if (!build) throw new Error(`${bin} is missing: run scripts/kube/build-node.sh`);
  }
  await new Promise<void>((resolve, reject) => {
    const cmd = [buildScript()];
    const child = spawn('bash', cmd, { env: { ...process.env, KUBE_VERSION: kubeVersion }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd.join(' ')} failed (exit ${code}):\n${err}`))));
  });
  await access(bin);
  return bin;
}

function healthz(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 2000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

export async function startControllerManager(env: KubeTestEnv, opts: ControllerManagerOptions = {}): Promise<RunningControllerManager> {
  const bin = await ensureControllerManager(env.kubeVersion, opts.build ?? true);
  const dir = join(env.dir, 'kube-controller-manager');
  await mkdir(dir, { recursive: true });
  const logFile = join(dir, 'kube-controller-manager.log');
  const port = await freePort();
  const args = [
    `--kubeconfig=${env.kubeconfigPath}`,
    `--controllers=${(opts.controllers ?? ['garbagecollector']).join(',')}`,
    '--leader-elect=false',
    '--use-service-account-credentials=false',
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    `--cert-dir=${join(dir, 'certs')}`,
    // No delegated authn/z against the API server: /healthz only, on loopback.
    '--authentication-skip-lookup=true',
    '--authorization-always-allow-paths=/healthz,/readyz,/livez',
    '--v=1',
  ];
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
    child = spawn(cmd, argv, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const logTail = async (lines = 40) => {
    try {
      return (await readFile(logFile, 'utf8')).split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };
  const stop = async () => {
    if (exited()) return;
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => !exited() && child.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited()) throw new Error(`kube-controller-manager exited early (code ${child.exitCode})\n${await logTail()}`);
    if (await healthz(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`kube-controller-manager not healthy in time\n${await logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { pid: child.pid ?? -1, logFile, logTail, stop };
}

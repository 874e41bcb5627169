/**
 * Real Redis topologies on loopback for tests, from Debian's redis-server and
 * redis-cli: a Cluster of N masters (no replicas), a Sentinel watching one
 * master, and a TLS-only server with its own CA. Each process gets its own
 * scratch directory; stop() kills and removes.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { freePort } from '@llmtor/devtools';
import { Redis } from 'ioredis';

const run = promisify(execFile);

interface Proc {
  child: ChildProcess;
  port: number;
  dir: string;
}

/** PING over a raw socket: true once the server answers (with PONG, or NOAUTH when it wants a password). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('error', () => resolve(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => {
      sock.destroy();
      resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()));
    });
  });
}

/** One command on a short-lived client; '' when it fails. */
async function oneShot(port: number, args: string[], password?: string): Promise<string> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null, ...(password ? { password } : {}) });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return JSON.stringify(await r.call(args[0]!, ...args.slice(1)));
  } catch {
    return '';
  } finally {
    r.disconnect();
  }
}

async function waitFor(what: string, ms: number, check: () => Promise<boolean>, procs: Proc[] = []): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const dead = procs.find((p) => p.child.exitCode !== null);
    if (dead) throw new Error(`redis-server on port ${dead.port} exited (${dead.child.exitCode}) while waiting for ${what}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function spawnRedis(args: string[], port: number, dir: string, extraFirst: string[] = []): Promise<Proc> {
  const child = spawn('redis-server', [...extraFirst, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: 'ignore' });
  const p = { child, port, dir };
  await waitFor(`redis-server on ${port}`, 5000, () => answers(port), [p]);
  return p;
}

async function stopAll(procs: Proc[]): Promise<void> {
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
          p.child.once('exit', () => resolve());
          p.child.kill('SIGKILL');
        }),
    ),
  );
  for (const p of procs) rmSync(p.dir, { recursive: true, force: true });
}

export interface ClusterHandle {
  /** "127.0.0.1:port" of every master. */
  nodes: string[];
  stop(): Promise<void>;
}

/** A Redis Cluster of `masters` masters (no replicas), all 16384 slots assigned, state ok. */
export async function startRedisCluster(masters = 3): Promise<ClusterHandle> {
  const procs: Proc[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'llmtor-cluster-'));
      procs.push(await spawnRedis(['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '5000'], port, dir));
    }
    const nodes = procs.map((p) => `127.0.0.1:${p.port}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    await waitFor('cluster state ok on every node', 20_000, async () => {
      const infos = await Promise.all(procs.map((p) => oneShot(p.port, ['CLUSTER', 'INFO'])));
      return infos.every((i) => i.includes('cluster_state:ok') && i.includes(`cluster_known_nodes:${masters}`));
    }, procs);
    return { nodes, stop: () => stopAll(procs) };
  } catch (e) {
    await stopAll(procs);
    throw e;
  }
}

export interface SentinelHandle {
  /** "127.0.0.1:port" of the Sentinel. */
  sentinel: string;
  masterName: string;
  masterPort: number;
  stop(): Promise<void>;
}

/** One master (with `requirepass`) and one Sentinel (with its own `requirepass`) monitoring it. */
export async function startRedisSentinel(o: { masterPassword: string; sentinelPassword: string; masterName?: string }): Promise<SentinelHandle> {
  const masterName = o.masterName ?? 'llmtor-master';
  const procs: Proc[] = [];
  try {
    const masterPort = await freePort();
    procs.push(await spawnRedis(['--requirepass', o.masterPassword], masterPort, mkdtempSync(join(tmpdir(), 'llmtor-master-'))));
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'llmtor-sentinel-'));
    const conf = join(dir, 'sentinel.conf');
    // Sentinel rewrites its config file, so it must be a writable file of its own.
    writeFileSync(
      conf,
      [
        `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 1`,
        `sentinel auth-pass ${masterName} ${o.masterPassword}`,
        `sentinel down-after-milliseconds ${masterName} 5000`,
        `requirepass ${o.sentinelPassword}`,
        '',
      ].join('\n'),
    );
    procs.push(await spawnRedis(['--sentinel'], port, dir, [conf]));
    await waitFor('the sentinel to know the master', 10_000, async () =>
      (await oneShot(port, ['SENTINEL', 'get-master-addr-by-name', masterName], o.sentinelPassword)).includes(String(masterPort)),
    procs);
    return { sentinel: `127.0.0.1:${port}`, masterName, masterPort, stop: () => stopAll(procs) };
  } catch (e) {
    await stopAll(procs);
    throw e;
  }
}

export interface TlsRedisHandle {
  /** rediss://127.0.0.1:port */
  url: string;
  /** PEM of the CA that signed the server's certificate (what REDIS_TLS_CA_FILE points at). */
  caFile: string;
  stop(): Promise<void>;
}

/** A TLS-only redis-server whose certificate (for 127.0.0.1) is signed by a fresh private CA (made with the openssl CLI). */
export async function startRedisTls(): Promise<TlsRedisHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'llmtor-redis-tls-'));
  const f = (n: string) => join(dir, n);
  const openssl = (...args: string[]) => run('openssl', args, { cwd: dir, timeout: 20_000 });
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=llmtor test CA');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '2', '-extfile', f('ext.cnf'));
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--tls-cert-file', f('server.pem'), '--tls-key-file', f('server.key'), '--tls-ca-cert-file', f('ca.pem'), '--tls-auth-clients', 'no'],
    { stdio: 'ignore' },
  );
  const p: Proc = { child, port, dir };
  const probe = () =>
    new Promise<boolean>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(f('ca.pem')) }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  try {
    await waitFor(`TLS redis-server on ${port}`, 5000, probe, [p]);
  } catch (e) {
    await stopAll([p]);
    throw e;
  }
  return { url: `rediss://127.0.0.1:${port}`, caFile: f('ca.pem'), stop: () => stopAll([p]) };
}

export interface FailoverSetHandle {
  masterName: string;
  password: string;
  sentinels: { host: string; port: number }[];
  primaryPort: number;
  replicaPort: number;
  /** One command on a node (by port), with the password; '' when it fails. */
  command(port: number, ...args: string[]): Promise<string>;
  /** The master's port as the first Sentinel reports it. */
  masterPort(): Promise<number>;
  killPrimary(): Promise<void>;
  /** Starts the killed primary again on its port and data dir (AOF): Sentinel makes it a replica of the new master. */
  restartPrimary(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * What production runs with Sentinel: a primary with AOF `appendfsync always`, one replica,
 * three Sentinels (quorum 2, down after 1 s), everything with a password. Ready when the
 * replica's link is up and every Sentinel knows the replica and the other two Sentinels.
 */
export async function startSentinelFailoverSet(o: { masterName?: string; password?: string } = {}): Promise<FailoverSetHandle> {
  const masterName = o.masterName ?? 'llmtor-failover';
  const password = o.password ?? 'failover-test-password';
  const procs: Proc[] = [];
  const auth = ['--requirepass', password, '--masterauth', password];
  try {
    const primaryPort = await freePort();
    const primaryDir = mkdtempSync(join(tmpdir(), 'llmtor-primary-'));
    const primaryArgs = ['--appendonly', 'yes', '--appendfsync', 'always', ...auth];
    let primary = await spawnRedis(primaryArgs, primaryPort, primaryDir);
    procs.push(primary);
    const replicaPort = await freePort();
    procs.push(await spawnRedis(['--replicaof', '127.0.0.1', String(primaryPort), ...auth], replicaPort, mkdtempSync(join(tmpdir(), 'llmtor-replica-'))));
    await waitFor('the replica link', 10_000, async () => (await oneShot(replicaPort, ['INFO', 'replication'], password)).includes('master_link_status:up'), procs);
    const sentinels: { host: string; port: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'llmtor-sentinel-'));
      const conf = join(dir, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `sentinel monitor ${masterName} 127.0.0.1 ${primaryPort} 2`,
          `sentinel auth-pass ${masterName} ${password}`,
          `sentinel down-after-milliseconds ${masterName} 1000`,
          `sentinel failover-timeout ${masterName} 10000`,
          '',
        ].join('\n'),
      );
      procs.push(await spawnRedis(['--sentinel'], port, dir, [conf]));
      sentinels.push({ host: '127.0.0.1', port });
    }
    await waitFor('every Sentinel to know the replica and the other Sentinels', 30_000, async () => {
      const masters = await Promise.all(sentinels.map((s) => oneShot(s.port, ['SENTINEL', 'master', masterName])));
      return masters.every((m) => {
        const f = JSON.parse(m || '[]') as string[];
        const v = (k: string) => f[f.indexOf(k) + 1];
        return v('num-slaves') === '1' && v('num-other-sentinels') === '2';
      });
    }, procs);
    const handle: FailoverSetHandle = {
      masterName,
      password,
      sentinels,
      primaryPort,
      replicaPort,
      command: (port, ...args) => oneShot(port, args, password),
      masterPort: async () => Number((JSON.parse((await oneShot(sentinels[0]!.port, ['SENTINEL', 'get-master-addr-by-name', masterName])) || '[]') as string[])[1]),
      killPrimary: () =>
        new Promise<void>((resolve) => {
          if (primary.child.exitCode !== null || primary.child.signalCode !== null) return resolve();
          primary.child.once('exit', () => resolve());
          primary.child.kill('SIGKILL');
        }),
      restartPrimary: async () => {
        const i = procs.indexOf(primary);
        primary = await spawnRedis(primaryArgs, primaryPort, primaryDir);
        procs[i] = primary;
      },
      stop: () => stopAll(procs),
    };
    return handle;
  } catch (e) {
    await stopAll(procs);
    throw e;
  }
}

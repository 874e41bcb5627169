/**
 * A real Redis for tests: REDIS_URL if set; else a `redis-server` (Debian
 * package; `make test` installs it) spawned on a free loopback port with its own
 * scratch directory; else testcontainers when a Docker engine exists. Fails fast
 * with a message that says what to install.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface RedisHandle {
  url: string;
  port: number;
  /** Only for a spawned server: kill it (SIGKILL to simulate a crash) and start it again on the same port and data dir. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Only for a spawned server: sends a signal without waiting for an exit (SIGSTOP/SIGCONT to stall it). */
  signal(signal: NodeJS.Signals): void;
  restart(): Promise<void>;
  stop(): Promise<void>;
  readonly spawned: boolean;
}

export { freePort };

function redisServerPath(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.write('PING\r\n');
        sock.once('data', (d) => {
          sock.destroy();
          resolve(d.toString().startsWith('+PONG'));
        });
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface StartRedisOptions {
  /** Append-only file on (for crash/restart tests). */
  appendOnly?: boolean;
  /** Ignore REDIS_URL and always spawn (tests that kill the server need their own). */
  forceSpawn?: boolean;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisHandle> {
  if (process.env.REDIS_URL && !opts.forceSpawn) {
    const url = process.env.REDIS_URL;
    const noop = async () => {
      throw new Error('cannot kill/restart an external REDIS_URL server');
    };
    return {
      url,
      port: Number(new URL(url).port || 6379),
      kill: noop,
      signal: () => {
        throw new Error('cannot signal an external REDIS_URL server');
      },
      restart: noop,
      stop: async () => {},
      spawned: false,
    };
  }
  const bin = redisServerPath();
  if (!bin) {
    if (!opts.forceSpawn) {
      const tc = await tryTestcontainers();
      if (tc) return tc;
    }
    throw new Error('No Redis for tests: set REDIS_URL, or install redis-server (`apt-get install redis-server`; `make test` does it), or run a Docker engine for testcontainers.');
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'llmtor-redis-'));
  let child: ChildProcess;
  const start = async () => {
    child = spawn(
      bin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', opts.appendOnly ? 'yes' : 'no', '--appendfsync', 'always', '--dir', dir, '--protected-mode', 'yes'],
      { stdio: 'ignore' },
    );
    live.add(child);
    child.once('exit', () => live.delete(child));
    await waitForPort(port, child, 5000);
  };
  await start();
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    spawned: true,
    kill,
    signal: (signal) => {
      child.kill(signal);
    },
    restart: start,
    stop: async () => {
      // A stopped server would never see the SIGTERM.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
      await kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function tryTestcontainers(): Promise<RedisHandle | undefined> {
  try {
    const modName = 'testcontainers';
    const tc = (await import(modName)) as {
      GenericContainer: new (image: string) => { withExposedPorts(p: number): { start(): Promise<{ getHost(): string; getMappedPort(p: number): number; stop(): Promise<void> }> } };
    };
    const c = await new tc.GenericContainer('redis:7').withExposedPorts(6379).start();
    const port = c.getMappedPort(6379);
    const no = async () => {
      throw new Error('kill/restart is not supported for a testcontainers Redis');
    };
    return {
      url: `redis://${c.getHost()}:${port}`,
      port,
      spawned: false,
      kill: no,
      signal: () => {
        throw new Error('cannot signal a testcontainers Redis');
      },
      restart: no,
      stop: () => c.stop(),
    };
  } catch {
    return undefined;
  }
}

/**
 * Starts stripe-mock (Stripe's own API stand-in) on a free loopback port for
 * tests and the demo. The binary comes from ${LLMTOR_CACHE:-~/.cache/llmtor}/bin
 * or PATH; if missing, scripts/install-stripe-mock.sh installs it with Go.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StripeMock {
  /** e.g. http://127.0.0.1:43127 — give it to config stripe.apiBase. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export function stripeMockBinary(opts: { install?: boolean } = {}): string {
  const cached = join(process.env.LLMTOR_CACHE ?? join(homedir(), '.cache', 'llmtor'), 'bin', 'stripe-mock');
  if (existsSync(cached)) return cached;
  const onPath = spawnSync('sh', ['-c', 'command -v stripe-mock'], { encoding: 'utf8' });
  if (onPath.status === 0 && onPath.stdout.trim()) return onPath.stdout.trim();
  if (opts.install ?? true) {
    const script = fileURLToPath(new URL('../../../../scripts/install-stripe-mock.sh', import.meta.url));
    const r = spawnSync('sh', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 300_000 });
    if (r.status === 0 && existsSync(r.stdout.trim())) return r.stdout.trim();
  }
  throw new Error('stripe-mock is not installed and could not be installed: run scripts/install-stripe-mock.sh (needs Go) or put stripe-mock on PATH');
}

export async function startStripeMock(): Promise<StripeMock> {
  const bin = stripeMockBinary();
  const port = await freePort();
  const child = spawn(bin, ['-http-port', String(port)], { stdio: 'ignore' });
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`stripe-mock exited with code ${child.exitCode}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`stripe-mock did not listen on port ${port} within 15 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Starts redemptionServer.ts as a child process and waits until it listens. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Mint } from './tokens.js';

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  stderr: string[];
  stop(): Promise<void>;
}

export async function spawnRedemptionServer(opts: { mint: Mint; redisUrl?: string; config: unknown }): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'llmtor-rdm-'));
  const keysFile = join(dir, 'keys.json');
  writeFileSync(keysFile, JSON.stringify(opts.mint.metadata()));
  const entry = join(dirname(fileURLToPath(import.meta.url)), 'redemptionServer.js');
  const child = spawn(process.execPath, ['--max-http-header-size=65536', entry], {
    env: { ...process.env, KEYS_FILE: keysFile, ISSUER: opts.mint.issuer, REDEMPTION_CONFIG: JSON.stringify(opts.config), ...(opts.redisUrl ? { REDIS_URL: opts.redisUrl } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server did not start: ${stderr.join('')}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /LISTENING (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}: ${stderr.join('')}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    stderr,
    stop: async () => {
      if (child.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      });
    },
  };
}

/**
 * Shared pieces of the private Tor network harness: the process-exit safety net (no tor
 * outlives node), temp-dir hygiene, and small helpers used by the other tornet modules.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// ---------------------------------------------------------------------------
// process-exit safety net

export interface LiveProcess {
  child: ChildProcess;
  exited: boolean;
}
export const liveProcesses = new Set<LiveProcess>();
export const tempDirsToRemove = new Set<string>();
let exitHookInstalled = false;

export function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of liveProcesses) {
      if (!p.exited && p.child.pid !== undefined) {
        try {
          process.kill(p.child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    for (const d of tempDirsToRemove) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
  });
}

// ---------------------------------------------------------------------------
/** `$LLMTOR_CACHE/tor-keys`, else `${XDG_CACHE_HOME:-~/.cache}/llmtor/tor-keys`. */
export function defaultKeyCacheDir(): string {
  if (process.env['LLMTOR_CACHE']) return path.join(process.env['LLMTOR_CACHE'], 'tor-keys');
  const base = process.env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache');
  return path.join(base, 'llmtor', 'tor-keys');
}

export const TEMP_PREFIX = 'llmtor-tornet-';

/** Remove temporary network dirs left by processes that died without cleaning up (their
 * tor processes exit by themselves through __OwningControllerProcess). */
export async function removeStaleTempDirs(): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(os.tmpdir());
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.startsWith(TEMP_PREFIX)) continue;
    const dir = path.join(os.tmpdir(), e);
    try {
      const pid = Number((await readFile(path.join(dir, 'owner-pid'), 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
        continue; // owner alive
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      }
      await rm(dir, { recursive: true, force: true });
    } catch {
      /* not ours, or being created right now */
    }
  }
}

/** Fail early, with a hint, when tor or tor-gencert is missing. */
export function checkTool(cmd: string): void {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) {
    throw new Error(`tor network: cannot run ${cmd} (${r.error.message}); install Debian's tor package (apt-get install tor)`);
  }
}

/** KEY=VALUE words (values possibly quoted) into a record. */
export function parseFields(words: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of words) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    let v = kv.slice(eq + 1);
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    out[kv.slice(0, eq)] = v;
  }
  return out;
}

export function tailLines(text: string, n: number): string {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.slice(-n).join('\n');
}

export function randomCredential(): string {
  return randomBytes(12).toString('hex');
}

export function runTool(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    input: opts.input ?? '',
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${tailLines((r.stderr || '') + (r.stdout || ''), 15)}`);
  }
  return r.stdout;
}

// ---------------------------------------------------------------------------
export async function withTimeout<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message())), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, deadline: number, intervalMs = 200): Promise<T> {
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}


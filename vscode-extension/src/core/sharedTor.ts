/**
 * One tor per machine for every VS Code window. Windows share the extension's global storage,
 * so they share tor's data directory, which only one tor can hold (the second one exited and
 * its window showed "Tor failed"). The first window to start takes a start lock, runs tor and
 * records its process id and SOCKS port beside the data; later windows find that record, check
 * the process lives and the port speaks SOCKS5, and use it. Every window still gets a fresh
 * circuit per request (IsolateSOCKSAuth with random credentials). tor exits with the window
 * that started it (__OwningControllerProcess); the others notice (watchShared) and one of them
 * starts the next tor.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { speaksSocks5 } from './torSource.js';
import { TorSupervisor, type TorSupervisorOptions } from './torSupervisor.js';
import type { SocksEndpoint } from './torTransport.js';

const SHARE_FILE = 'llmtor-shared-tor.json';
const LOCK_FILE = 'llmtor-start.lock';
/** A start lock older than this is stale (its window died while tor bootstrapped). */
const STALE_LOCK_MS = 180_000;

export interface SharedTorInfo {
  torPid: number;
  socksPort: number;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readShared(dataDir: string): SharedTorInfo | undefined {
  try {
    const v = JSON.parse(readFileSync(path.join(dataDir, SHARE_FILE), 'utf8')) as Partial<SharedTorInfo>;
    if (Number.isInteger(v.torPid) && Number.isInteger(v.socksPort)) return { torPid: v.torPid!, socksPort: v.socksPort! };
  } catch {
    // none yet, or unreadable: start one.
  }
  return undefined;
}

/** The tor another window runs on this data directory, if it lives and answers SOCKS5. */
export async function findShared(dataDir: string): Promise<(SharedTorInfo & { socks: SocksEndpoint }) | undefined> {
  const info = readShared(dataDir);
  if (!info || !isAlive(info.torPid)) return undefined;
  const socks = { host: '127.0.0.1', port: info.socksPort };
  return (await speaksSocks5(socks, 2000)) ? { ...info, socks } : undefined;
}

function tryLock(dataDir: string): boolean {
  const file = path.join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = NaN;
      let age = 0;
      try {
        holder = Number(readFileSync(file, 'utf8'));
        age = Date.now() - statSync(file).mtimeMs;
      } catch {
        continue;
      }
      if (Number.isInteger(holder) && isAlive(holder) && age < STALE_LOCK_MS) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

export interface JoinResult {
  socks: SocksEndpoint;
  torPid: number;
  /** Set when this window started tor (and must stop it); undefined when it joined another's. */
  supervisor: TorSupervisor | undefined;
}

/**
 * Uses the tor another window runs on `o.dataDir`, or starts one (`onSupervisor` sees it before
 * it bootstraps, for progress). Waits up to `waitMs` while another window is starting tor.
 */
export async function startOrJoin(o: TorSupervisorOptions & { waitMs?: number; onSupervisor?: (s: TorSupervisor) => void }): Promise<JoinResult> {
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  const deadline = Date.now() + (o.waitMs ?? 150_000);
  for (;;) {
    const found = await findShared(o.dataDir);
    if (found) return { socks: found.socks, torPid: found.torPid, supervisor: undefined };
    if (tryLock(o.dataDir)) {
      try {
        // Another window may have finished between the look and the lock.
        const again = await findShared(o.dataDir);
        if (again) return { socks: again.socks, torPid: again.torPid, supervisor: undefined };
        const sup = new TorSupervisor(o);
        o.onSupervisor?.(sup);
        const socks = await sup.start();
        const torPid = sup.pid!;
        writeFileSync(path.join(o.dataDir, SHARE_FILE), JSON.stringify({ torPid, socksPort: socks.port } satisfies SharedTorInfo), { mode: 0o600 });
        return { socks, torPid, supervisor: sup };
      } finally {
        rmSync(path.join(o.dataDir, LOCK_FILE), { force: true });
      }
    }
    if (Date.now() > deadline) throw new Error('another VS Code window is starting tor and has not finished; try Restart Tor');
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Calls `onGone` once when the shared tor `torPid` exits (polls every `everyMs`). */
export function watchShared(torPid: number, onGone: () => void, everyMs = 3000): { dispose(): void } {
  const t = setInterval(() => {
    if (isAlive(torPid)) return;
    clearInterval(t);
    onGone();
  }, everyMs);
  t.unref?.();
  return { dispose: () => clearInterval(t) };
}

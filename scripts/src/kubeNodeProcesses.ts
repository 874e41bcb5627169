/**
 * The kube node's processes and what it owns on the host (scripts/src/kubeNode.ts): detached
 * components recorded by pid and start time (a recycled pid is never killed), the run's
 * state file, the pods' cgroups, the one-owner lock `<dir>.lock`, and waiting on readiness.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CGROUP_ROOT, NODE_NETNS } from './kubeNodeLayout.js';

export interface ProcRecord {
  name: string;
  pid: number;
  /** /proc/<pid>/stat start time, so a recycled pid is never killed */
  start: string;
}

/** `<dir>/state.json`: what `down` must undo, written as the node comes up. */
export interface NodeState {
  procs: ProcRecord[];
  attached: { netns: string; ifName: string }[];
}

/** nsenter's arguments that run the rest of the command line in the node's namespace. */
export const NSENTER = ['--net=/run/netns/' + NODE_NETNS, '--'];

/** Start time of a live process (undefined when gone or a zombie waiting for its reaper). */
export function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' || f[0] === 'X' ? undefined : f[19];
  } catch {
    return undefined;
  }
}

export function alive(p: ProcRecord): boolean {
  return procStart(p.pid) === p.start;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitUntil(
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

export async function tail(file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function spawnDetached(dir: string, name: string, cmd: string, args: string[], netns: boolean): ProcRecord {
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

export async function killAll(procs: ProcRecord[], graceMs: number, log: (l: string) => void = () => undefined): Promise<void> {
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
export function pidsReferencing(dir: string): ProcRecord[] {
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
export function cgroupRoots(): string[] {
  const roots: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    if (f[sep + 1] === 'cgroup' || f[sep + 1] === 'cgroup2') roots.push(f[4]!);
  }
  return roots;
}


/** Pids in our cgroup subtree (containers, pause), from any hierarchy. */
export function cgroupPids(): ProcRecord[] {
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

export async function removeCgroups(): Promise<void> {
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

/**
 * `<dir>.lock` holds "<pid> <start time>" of the process that owns the node. Created with
 * O_EXCL, so two callers never both win; a lock whose process is gone is stale.
 */
export async function takeOwnership(dir: string, waitMs: number, log: (l: string) => void): Promise<void> {
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

export function releaseOwnership(dir: string): void {
  const lock = `${dir}.lock`;
  try {
    if (readFileSync(lock, 'utf8').trim().split(' ')[0] === String(process.pid)) rmSync(lock, { force: true });
  } catch {
    /* not ours or gone */
  }
}

export async function loadState(dir: string): Promise<NodeState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

let saves = 0;
export async function saveState(dir: string, s: NodeState): Promise<void> {
  // A temporary file per call: relays opened concurrently (exposeToHost) save at the same time.
  const tmp = join(dir, `state.json.${process.pid}.${saves++}.tmp`);
  await writeFile(tmp, JSON.stringify(s, null, 2));
  await rename(tmp, join(dir, 'state.json'));
}

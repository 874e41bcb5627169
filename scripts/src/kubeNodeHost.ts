/**
 * What the kube node (scripts/src/kubeNode.ts) does to the host's network and mounts: its
 * network namespace with the pod bridge and the CNI configuration, veths into callers'
 * namespaces, socat relays between host loopback and the namespace, mounts under the run
 * dir, and the host-wide sysctls the kubelet changes (saved before, restored after).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ATTACH_FIRST, ATTACH_LAST, KUBELET_SYSCTLS, NODE_BRIDGE, NODE_IP, NODE_NETNS, POD_CIDR, POD_RANGE, SERVICE_CIDR } from './kubeNodeLayout.js';
import { killAll, NSENTER, saveState, sleep, spawnDetached, type NodeState } from './kubeNodeProcesses.js';
import { freePort } from './ports.js';
import { runCommand, type CommandResult } from './runCommand.js';

export const run = runCommand;

export async function must(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** Runs a host binary inside the node's network namespace. */
export function inNs(cmd: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return run('nsenter', [...NSENTER, ...cmd], opts);
}

export function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

// ----------------------------------------------------------------------------- namespace and bridge

const ipn = (...a: string[]) => must('ip', ['-n', NODE_NETNS, ...a]);

/** The node's namespace: loopback, the pod bridge, a route to ClusterIPs, forwarding sysctls; and the CNI conflist. */
export async function createNodeNetwork(dir: string): Promise<void> {
  await must('ip', ['netns', 'add', NODE_NETNS]);
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
}

/** Removes the veths handed out by {@link attachNetns}, then the namespace (its bridge and iptables go with it). */
export async function deleteNodeNetwork(attached: NodeState['attached']): Promise<void> {
  for (const a of attached) await run('ip', ['-n', a.netns, 'link', 'del', a.ifName], { timeoutMs: 10_000 });
  if (!netnsExists(NODE_NETNS)) return;
  const r = await run('ip', ['netns', 'del', NODE_NETNS], { timeoutMs: 10_000 });
  if (r.code !== 0) {
    await run('umount', ['-l', `/run/netns/${NODE_NETNS}`]);
    await rm(`/run/netns/${NODE_NETNS}`, { force: true });
  }
}

/** A veth from the pod bridge into the caller's namespace `netns`, with an address of 10.213.0.200-250; recorded in `state`. */
export async function attachNetns(dir: string, state: NodeState, netns: string): Promise<string> {
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
}

// ----------------------------------------------------------------------------- relays

/**
 * True when a socket listens on ip:port in the network namespace of `pid` (default: ours),
 * read from /proc/<pid>/net/tcp: no probe connection.
 */
export function listensOn(ip: string, port: number, pid: number | 'self' = 'self'): boolean {
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

export function listensOnLoopback(port: number): boolean {
  return listensOn('127.0.0.1', port);
}

export interface Relay {
  port: number;
  close(): Promise<void>;
}

/** socat: host 127.0.0.1:<free port> -> unix socket -> host:port inside the namespace; recorded in `state`. */
export async function exposeToHost(dir: string, state: NodeState, host: string, port: number): Promise<Relay> {
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
}

/** socat: NODE_IP:nsPort in the namespace (pods reach it) -> unix socket -> host 127.0.0.1:hostPort; recorded in `state`. */
export async function exposeToPods(dir: string, state: NodeState, hostPort: number, nsPort = hostPort): Promise<Relay & { host: string }> {
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
}

// ----------------------------------------------------------------------------- mounts

/** Mount points at or below `prefix`, deepest first. */
export function mountsUnder(prefix: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (!mp) continue;
    const p = mp.replace(/\\040/g, ' ');
    if (p === prefix || p.startsWith(prefix + '/')) out.push(p);
  }
  return out.sort((a, b) => b.length - a.length);
}

export async function unmountAll(prefix: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mps = mountsUnder(prefix);
    if (mps.length === 0) return;
    for (const mp of mps) {
      const r = await run('umount', [mp], { timeoutMs: 10_000 });
      if (r.code !== 0) await run('umount', ['-l', mp], { timeoutMs: 10_000 });
    }
  }
}

// ----------------------------------------------------------------------------- host sysctls

async function readSysctl(k: string): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/sys/${k}`, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/**
 * Saves the host's values of the sysctls the kubelet sets, in `<dir>.host-sysctls.json`:
 * outside the run dir, so a crashed run's values survive until the next down/up.
 */
export async function saveHostSysctls(dir: string): Promise<void> {
  const sysctls: Record<string, string> = {};
  for (const k of KUBELET_SYSCTLS) {
    const v = await readSysctl(k);
    if (v !== undefined) sysctls[k] = v;
  }
  await writeFile(`${dir}.host-sysctls.json`, JSON.stringify(sysctls, null, 2));
}

/** Restores what {@link saveHostSysctls} saved, then forgets it. */
export async function restoreHostSysctls(dir: string): Promise<void> {
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
}

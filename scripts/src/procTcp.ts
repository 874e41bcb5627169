/** Which process owns a loopback TCP socket, from /proc/net/tcp{,6} and /proc/<pid>/fd (Linux only). */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';

interface ProcTcpEntry {
  localPort: number;
  remotePort: number;
  loopback: boolean;
  inode: string;
}

function readProcTcp(): ProcTcpEntry[] {
  const out: ProcTcpEntry[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const [localAddr, localPortHex] = f[1]!.split(':');
      const [, remotePortHex] = f[2]!.split(':');
      if (!localAddr || !localPortHex || !remotePortHex) continue;
      out.push({
        localPort: parseInt(localPortHex, 16),
        remotePort: parseInt(remotePortHex, 16),
        loopback: isLoopbackHex(localAddr),
        inode: f[9]!,
      });
    }
  }
  return out;
}

function isLoopbackHex(addr: string): boolean {
  if (addr.length === 8) return addr.endsWith('7F'); // little-endian 127.x.x.x
  // IPv6: ::1, or ::ffff:127.x.x.x (v4-mapped) — stored as four little-endian words.
  if (addr === '00000000000000000000000001000000') return true;
  return addr.startsWith('0000000000000000FFFF0000') && addr.endsWith('7F');
}

function pidOwnsInode(pid: number, inode: string): boolean {
  const fdDir = `/proc/${pid}/fd`;
  let fds: string[];
  try {
    fds = readdirSync(fdDir);
  } catch {
    return false;
  }
  const want = `socket:[${inode}]`;
  for (const fd of fds) {
    try {
      if (readlinkSync(path.join(fdDir, fd)) === want) return true;
    } catch {
      /* fd closed meanwhile */
    }
  }
  return false;
}

/**
 * The pid of the process owning the loopback TCP socket whose *local* port is `port`
 * (and, if given, whose remote port is `remotePort`) — i.e. given `socket.remotePort`
 * seen by a local server (and that server's port), the connecting process.
 * `preferPids` are searched first. Linux only (/proc); undefined when not found.
 */
export function ownerOfLocalPort(port: number, remotePort?: number, preferPids: number[] = []): number | undefined {
  const inodes = readProcTcp()
    .filter((e) => e.loopback && e.localPort === port && (remotePort === undefined || e.remotePort === remotePort))
    .map((e) => e.inode)
    .filter((i) => i !== '0');
  if (inodes.length === 0) return undefined;
  const candidates = [...preferPids];
  try {
    for (const d of readdirSync('/proc')) {
      if (/^\d+$/.test(d)) {
        const pid = Number(d);
        if (!preferPids.includes(pid)) candidates.push(pid);
      }
    }
  } catch {
    /* no /proc */
  }
  for (const pid of candidates) {
    for (const inode of inodes) if (pidOwnsInode(pid, inode)) return pid;
  }
  return undefined;
}

// ---------------------------------------------------------------------------

/**
 * A private Tor network on loopback, built from Debian's `tor` and `tor-gencert`, for
 * integration tests that must prove a client reaches a server *only* through Tor.
 *
 * Layout (7 tor processes, every port on 127.0.0.1, picked free at start):
 *   authority0..2  directory authorities that also relay (keys via tor-gencert, cached)
 *   relay          a middle relay
 *   exit           the only exit; its policy accepts 127.0.0.0/8 and nothing else
 *   client         SocksPort (IsolateSOCKSAuth, tor's default) + ControlPort
 *   onionService   hosts onion services added with ADD_ONION … Flags=Detach
 *
 * API:
 *   startTorNetwork(opts?: StartTorNetworkOptions): Promise<TorNetwork>
 *     Resolves once (1) every authority holds every relay's descriptor and a consensus
 *     listing every relay is out, (2) the client has bootstrapped 100 %, (3) a real HTTP
 *     fetch through the SOCKS port (socks5h, via the exit) to a throwaway 127.0.0.1 server
 *     succeeded, and (4) every onion of `opts.onionTargets` / `opts.onionTargetPort` has its
 *     descriptor on the HSDirs. Fails after `opts.timeoutMs` (60 s, whole start) with the
 *     tails of the tor logs in the message; every tor is stopped on failure. Starts once
 *     more when a picked port was taken meanwhile.
 *     Options: baseDir (where a fresh `tornet-*` dir is made and kept; default a fresh
 *     `llmtor-tornet-*` under os.tmpdir(), removed on stop), onionTargetPort /
 *     onionTargets (local ports to publish as onions at start), log (progress lines),
 *     timeoutMs, keyCacheDir (authority keys; default defaultKeyCacheDir(), `false` for
 *     none), torPath, torGencertPath, keepDataDir.
 *     Environment: LLMTOR_TORNET_KEEP=1 keeps the data dir, LLMTOR_TORNET_LOGLEVEL=info
 *     (debug|info|notice|warn|err) sets the level of each `<role>/notice.log`,
 *     LLMTOR_CACHE / XDG_CACHE_HOME place the key cache.
 *
 *   TorNetwork
 *     socksPort, controlPort, cookiePath           the client's SOCKS and control ports
 *     onionControlPort, onionCookiePath             the onion service tor's control port
 *     socksUrl(isolationKey?)                       socks5h://user:pass@127.0.0.1:port —
 *                                                   random credentials (a fresh circuit) unless a
 *                                                   key is given (same key → same credentials)
 *     addOnion(localPort, opts?) → 'xxx.onion'      publish 127.0.0.1:localPort as an onion
 *                                                   service (virtual port 80 by default); waits for
 *                                                   the descriptor upload (or a reachability probe)
 *     removeOnion(address)
 *     onionAddress / onions                         onions published at start
 *     exitFingerprint, fingerprints[role], nicknames[role], pids[role], dataDirs[role], baseDir
 *     roleOfFingerprint(fp)
 *     watchStreams() → StreamWatcher                subscribes to STREAM events on the client;
 *                                                   watcher.next(filter) → the circuit (hops with
 *                                                   fingerprints and roles, conflux legs) a
 *                                                   SUCCEEDED stream used
 *     traceStream(action, filter?)                  watchStreams + action + next, in one call
 *     ownerOfPeerPort(peerPort, serverPort?)        the process (and role) owning the other end of
 *                                                   a loopback TCP connection (socket.remotePort)
 *     logTail(role, lines?), timings, stopped, stop()
 *
 *   ownerOfLocalPort(port, remotePort?)            the same, without role mapping (any process)
 *   socks5Connect({socksPort, host, port, username, password})   a raw SOCKS5 CONNECT
 *   freePorts(n), defaultKeyCacheDir(), TOR_ROLES, RELAY_ROLES, AUTHORITY_ROLES
 *
 * No tor process outlives its owner: stop() sends SIGTERM then SIGKILL after a short
 * grace, a process 'exit' hook SIGKILLs whatever is left, and every tor runs with
 * `__OwningControllerProcess <our pid>` so it exits by itself if node is killed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCircuitStatus, splitQuoted, TorControl, type CircuitStatus, type ControlEvent } from './torControl.js';
import { freePorts } from './ports.js';

export const AUTHORITY_ROLES = ['authority0', 'authority1', 'authority2'] as const;
export const RELAY_ROLES = [...AUTHORITY_ROLES, 'relay', 'exit'] as const;
export const TOR_ROLES = [...RELAY_ROLES, 'client', 'onionService'] as const;
export type TorRole = (typeof TOR_ROLES)[number];
export type RelayRole = (typeof RELAY_ROLES)[number];

export interface OnionTarget {
  /** Local port on `host` the service forwards to. */
  localPort: number;
  /** Port of the onion address (default 80). */
  virtualPort?: number;
  /** Local host (default 127.0.0.1). */
  host?: string;
}

export interface AddOnionOptions {
  virtualPort?: number;
  host?: string;
  /**
   * When addOnion resolves: 'uploaded' (default) once the descriptor reached an HSDir —
   * a client can then fetch it; 'reachable' also opens (and at once closes) one TCP
   * connection to the onion through the client, which reaches the local port; 'none'
   * right after ADD_ONION.
   */
  waitFor?: 'uploaded' | 'reachable' | 'none';
  timeoutMs?: number;
}

export interface StartTorNetworkOptions {
  /** Directory in which a fresh `tornet-*` directory holds the data dirs, kept after stop
   * (tor logs: `<role>/notice.log`). Default: a fresh `llmtor-tornet-*` directory under
   * os.tmpdir(), removed on stop. */
  baseDir?: string;
  /** Publish this local port as an onion service at start (virtual port 80). */
  onionTargetPort?: number;
  /** More onion services to publish at start. */
  onionTargets?: Array<number | OnionTarget>;
  /** Progress messages. */
  log?: (s: string) => void;
  /** Bound for the whole start (default 60 000 ms). */
  timeoutMs?: number;
  /** Where generated authority keys are cached; `false` disables the cache. */
  keyCacheDir?: string | false;
  torPath?: string;
  torGencertPath?: string;
  /** Keep a temporary data dir after stop (also: env LLMTOR_TORNET_KEEP=1). */
  keepDataDir?: boolean;
  /** Address of the relays' ORPorts and the authorities' DirPorts (default 127.0.0.1), e.g. an
   * address on a bridge so that tor instances in pods can join; control and SOCKS ports stay
   * on 127.0.0.1. Must be an address of this machine. */
  relayAddress?: string;
  /** Wait for a fetch through the exit before resolving (default true); onion-only users may skip it. */
  exitProbe?: boolean;
}

export interface CircuitHopInfo {
  fingerprint: string;
  nickname?: string;
  /** Role in this network, if the relay is one of ours. */
  role?: RelayRole;
}

export interface StreamCircuit {
  streamId: string;
  circuitId: string;
  /** Target the application asked for, e.g. `127.0.0.1:8080` or `abc….onion:80`. */
  target: string;
  /** Target in the SUCCEEDED event (exit streams: `127.0.0.1.<exit fp>.exit:8080`). */
  rawTarget: string;
  /** Circuit purpose: `GENERAL`, or `CONFLUX_LINKED` when tor's conflux (on by default
   * for exit traffic since 0.4.8) joined it with a second leg; `HS_CLIENT_REND` for onions. */
  purpose: string;
  /** The hops of the circuit the stream was attached to (first = guard). */
  hops: CircuitHopInfo[];
  /** Conflux set id, when the circuit is a conflux leg. */
  confluxId?: string;
  /** Every circuit that can carry the stream's data: all legs of the conflux set, or just
   * the one circuit. Data may flow over any leg; each ends at the same exit. */
  legs: Array<{ circuitId: string; hops: CircuitHopInfo[] }>;
  socksUsername?: string;
  socksPassword?: string;
  /** All KEY=VALUE fields of the circuit-status line. */
  circuitFields: Record<string, string>;
  /** All KEY=VALUE fields of the STREAM event. */
  streamFields: Record<string, string>;
}

export interface StreamFilter {
  /** Matches the stream target (`host:port`); a string must equal it. */
  target?: string | RegExp;
  timeoutMs?: number;
}

export interface StreamWatcher {
  /** The next SUCCEEDED stream (buffered since the watcher started) matching the filter. */
  next(filter?: StreamFilter): Promise<StreamCircuit>;
  /** Every SUCCEEDED stream seen so far. */
  readonly seen: readonly StreamCircuit[];
  close(): void;
}

export interface PeerOwner {
  pid: number;
  /** The network role of that process, or 'other' (e.g. the test process itself). */
  role: TorRole | 'other';
}

export interface TorNetworkTimings {
  /** From start to every authority holding every relay's descriptor. */
  descriptorsMs: number;
  /** From start to an authority's consensus listing every relay. */
  consensusMs: number;
  /** From start to the client's bootstrap at 100 %. */
  bootstrapMs: number;
  /** From start to the first successful fetch through the exit. */
  exitReadyMs: number;
  /** From start to the upload of each start-time onion (by address). */
  onionReadyMs: Record<string, number>;
  /** Whether the authority keys came from the cache. */
  keysCached: boolean;
}

export interface OnionInfo {
  address: string;
  localPort: number;
  virtualPort: number;
}

export interface TorNetwork {
  readonly socksPort: number;
  readonly controlPort: number;
  readonly cookiePath: string;
  readonly onionControlPort: number;
  readonly onionCookiePath: string;
  readonly exitFingerprint: string;
  readonly fingerprints: Readonly<Record<RelayRole, string>>;
  readonly nicknames: Readonly<Record<RelayRole, string>>;
  readonly pids: Readonly<Record<TorRole, number>>;
  readonly dataDirs: Readonly<Record<TorRole, string>>;
  readonly baseDir: string;
  /** Onions published at start, in the order given. */
  readonly onions: readonly OnionInfo[];
  /** The first start-time onion, if any. */
  readonly onionAddress: string | undefined;
  readonly timings: TorNetworkTimings;
  /** The `DirAuthority` torrc lines of this network, for extra tor processes that join it
   * (with `TestingTorNetwork 1`), e.g. onion services run outside this harness. */
  readonly dirAuthorityLines: readonly string[];
  socksUrl(isolationKey?: string): string;
  addOnion(localPort: number, opts?: AddOnionOptions): Promise<string>;
  removeOnion(address: string): Promise<void>;
  roleOfFingerprint(fingerprint: string): RelayRole | undefined;
  watchStreams(): Promise<StreamWatcher>;
  traceStream<T>(action: () => Promise<T>, filter?: StreamFilter): Promise<{ result: T; circuit: StreamCircuit }>;
  ownerOfPeerPort(peerPort: number, serverPort?: number): PeerOwner | undefined;
  logTail(role: TorRole, lines?: number): string;
  readonly stopped: boolean;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// process-exit safety net

interface LiveProcess {
  child: ChildProcess;
  exited: boolean;
}
const liveProcesses = new Set<LiveProcess>();
const tempDirsToRemove = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
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
// small helpers

export { freePorts };

/** `$LLMTOR_CACHE/tor-keys`, else `${XDG_CACHE_HOME:-~/.cache}/llmtor/tor-keys`. */
export function defaultKeyCacheDir(): string {
  if (process.env['LLMTOR_CACHE']) return path.join(process.env['LLMTOR_CACHE'], 'tor-keys');
  const base = process.env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache');
  return path.join(base, 'llmtor', 'tor-keys');
}

const TEMP_PREFIX = 'llmtor-tornet-';

/** Remove temporary network dirs left by processes that died without cleaning up (their
 * tor processes exit by themselves through __OwningControllerProcess). */
async function removeStaleTempDirs(): Promise<void> {
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
function checkTool(cmd: string): void {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) {
    throw new Error(`tor network: cannot run ${cmd} (${r.error.message}); install Debian's tor package (apt-get install tor)`);
  }
}

/** KEY=VALUE words (values possibly quoted) into a record. */
function parseFields(words: string[]): Record<string, string> {
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

function tailLines(text: string, n: number): string {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.slice(-n).join('\n');
}

function randomCredential(): string {
  return randomBytes(12).toString('hex');
}

function runTool(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
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
// authority keys (tor-gencert), cached outside the repository

interface AuthorityKeys {
  nickname: string;
  /** v3 identity (fingerprint of the authority identity key, from the certificate). */
  v3ident: string;
  /** Relay identity fingerprint. */
  fingerprint: string;
  /** Directory holding authority_certificate, authority_signing_key and relay keys/. */
  dir: string;
}

const KEY_CACHE_VERSION = 'v2';
const AUTHORITY_NICKNAMES = ['auth0', 'auth1', 'auth2'] as const;

async function readAuthoritySet(dir: string): Promise<AuthorityKeys[] | undefined> {
  const out: AuthorityKeys[] = [];
  for (const nickname of AUTHORITY_NICKNAMES) {
    const d = path.join(dir, nickname);
    try {
      const cert = await readFile(path.join(d, 'authority_certificate'), 'utf8');
      const v3ident = /^fingerprint ([0-9A-F]{40})$/m.exec(cert)?.[1];
      const expires = /^dir-key-expires (\S+ \S+)$/m.exec(cert)?.[1];
      const fpLine = await readFile(path.join(d, 'fingerprint'), 'utf8');
      const fingerprint = /([0-9A-F]{40})/.exec(fpLine)?.[1];
      await stat(path.join(d, 'authority_signing_key'));
      await stat(path.join(d, 'keys', 'secret_id_key'));
      if (!v3ident || !fingerprint || !expires) return undefined;
      // Regenerate when the certificate has less than 30 days left.
      if (Date.parse(expires.replace(' ', 'T') + 'Z') - Date.now() < 30 * 86_400_000) return undefined;
      out.push({ nickname, v3ident, fingerprint, dir: d });
    } catch {
      return undefined;
    }
  }
  return out;
}

async function generateAuthoritySet(dir: string, torPath: string, gencert: string): Promise<void> {
  checkTool(gencert);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const emptyTorrc = path.join(dir, 'empty-torrc');
  await writeFile(emptyTorrc, '');
  for (const nickname of AUTHORITY_NICKNAMES) {
    const d = path.join(dir, nickname);
    await mkdir(path.join(d, 'keys'), { recursive: true, mode: 0o700 });
    // No `-a address:port`: a certificate's dir-address overrides the DirAuthority line
    // ("Updating address for directory authority … based on certificate"); without it the
    // DirAuthority lines alone say where the authorities are, so one cached set serves
    // networks on any ports.
    runTool(gencert, ['--create-identity-key', '--passphrase-fd', '0', '-m', '12'], {
      cwd: d,
      input: '\n',
    });
    const relayDir = path.join(d, 'relay');
    await mkdir(relayDir, { recursive: true, mode: 0o700 });
    runTool(torPath, [
      '--defaults-torrc', emptyTorrc, '-f', emptyTorrc,
      '--list-fingerprint', '--DataDirectory', relayDir, '--ORPort', '1',
      '--Nickname', nickname, '--Log', 'err stderr', '--GeoIPFile', '', '--GeoIPv6File', '',
    ]);
    for (const f of await readdir(path.join(relayDir, 'keys'))) {
      await copyFile(path.join(relayDir, 'keys', f), path.join(d, 'keys', f));
    }
    await copyFile(path.join(relayDir, 'fingerprint'), path.join(d, 'fingerprint'));
    await rm(relayDir, { recursive: true, force: true });
  }
  await rm(emptyTorrc, { force: true });
}

/** Authority keys from the cache, generating (and caching) them when missing or old. */
async function authorityKeys(
  cacheRoot: string | false,
  scratch: string,
  torPath: string,
  gencert: string,
): Promise<{ keys: AuthorityKeys[]; cached: boolean }> {
  if (cacheRoot) {
    const setDir = path.join(cacheRoot, KEY_CACHE_VERSION);
    const existing = await readAuthoritySet(setDir);
    if (existing) return { keys: existing, cached: true };
    try {
      await mkdir(cacheRoot, { recursive: true, mode: 0o700 });
      const tmp = await mkdtemp(path.join(cacheRoot, '.tmp-'));
      await generateAuthoritySet(tmp, torPath, gencert);
      const old = existsSync(setDir) ? `${setDir}.old-${randomCredential()}` : undefined;
      if (old) await rename(setDir, old).catch(() => undefined);
      try {
        await rename(tmp, setDir);
      } catch {
        // Someone else cached a set meanwhile; use theirs.
        await rm(tmp, { recursive: true, force: true });
      }
      if (old) await rm(old, { recursive: true, force: true });
      const fresh = await readAuthoritySet(setDir);
      if (fresh) return { keys: fresh, cached: false };
    } catch {
      // Cache not writable: fall through to uncached keys in the scratch directory.
    }
  }
  const dir = path.join(scratch, 'authority-keys');
  await generateAuthoritySet(dir, torPath, gencert);
  const keys = await readAuthoritySet(dir);
  if (!keys) throw new Error('tor network: could not generate authority keys');
  return { keys, cached: false };
}

// ---------------------------------------------------------------------------
// /proc: which process owns a TCP port

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
// minimal SOCKS5 (RFC 1928/1929) client for readiness probes

class ByteReader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private error: Error | undefined;
  constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    const fail = (e: Error) => {
      this.error = e;
      this.waiter?.();
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed')));
  }
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.error) throw this.error;
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = undefined;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  rest(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }
}

const SOCKS_REPLIES: Record<number, string> = {
  1: 'general failure',
  2: 'not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
  0xf0: 'onion service descriptor not found',
  0xf1: 'onion service descriptor invalid',
  0xf2: 'onion service introduction failed',
  0xf3: 'onion service rendezvous failed',
  0xf4: 'onion service missing client authorization',
  0xf5: 'onion service wrong client authorization',
  0xf6: 'onion address invalid',
  0xf7: 'onion service introduction timed out',
};

/**
 * Open a TCP connection to host:port through a SOCKS5 proxy with username/password
 * authentication; the host name is resolved by the proxy (as with socks5h).
 */
export async function socks5Connect(opts: {
  socksPort: number;
  host: string;
  port: number;
  username: string;
  password: string;
  timeoutMs?: number;
}): Promise<{ socket: net.Socket; leftover: Buffer }> {
  const sock = net.connect({ host: '127.0.0.1', port: opts.socksPort });
  const timer = setTimeout(() => sock.destroy(new Error(`SOCKS connect timeout after ${opts.timeoutMs ?? 15_000} ms`)), opts.timeoutMs ?? 15_000);
  const reader = new ByteReader(sock);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.write(Buffer.from([5, 1, 2]));
    const m = await reader.read(2);
    if (m[0] !== 5 || m[1] !== 2) throw new Error(`SOCKS: username/password auth refused (${m.toString('hex')})`);
    const u = Buffer.from(opts.username);
    const p = Buffer.from(opts.password);
    sock.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
    const a = await reader.read(2);
    if (a[1] !== 0) throw new Error('SOCKS: authentication failed');
    const h = Buffer.from(opts.host);
    const req = Buffer.concat([Buffer.from([5, 1, 0, 3, h.length]), h, Buffer.from([opts.port >> 8, opts.port & 0xff])]);
    sock.write(req);
    const r = await reader.read(4);
    if (r[1] !== 0) {
      const code = r[1]!;
      throw new Error(`SOCKS: ${SOCKS_REPLIES[code] ?? 'error'} (0x${code.toString(16)})`);
    }
    const atyp = r[3];
    const addrLen = atyp === 1 ? 4 : atyp === 4 ? 16 : (await reader.read(1))[0]!;
    await reader.read(addrLen + 2);
    clearTimeout(timer);
    sock.removeAllListeners('data');
    sock.removeAllListeners('error');
    sock.removeAllListeners('close');
    return { socket: sock, leftover: reader.rest() };
  } catch (e) {
    clearTimeout(timer);
    sock.destroy();
    throw e;
  }
}

/** GET http://host:port/path through SOCKS (socks5h); resolves with the raw response text. */
async function socksHttpGet(socksPort: number, host: string, port: number, urlPath: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const { socket, leftover } = await socks5Connect({
    socksPort,
    host,
    port,
    username: randomCredential(),
    password: randomCredential(),
    timeoutMs,
  });
  return await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [leftover];
    const timer = setTimeout(() => socket.destroy(new Error('HTTP response timeout')), Math.max(1, deadline - Date.now()));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    socket.write(`GET ${urlPath} HTTP/1.0\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`);
  });
}

// ---------------------------------------------------------------------------
// the network

interface RoleProcess {
  role: TorRole;
  dataDir: string;
  live: LiveProcess;
  exitPromise: Promise<void>;
  output: string;
}

interface Ports {
  or: Record<RelayRole, number>;
  dir: Record<(typeof AUTHORITY_ROLES)[number], number>;
  control: Record<TorRole, number>;
  socks: number;
}

const NICKNAMES: Record<RelayRole, string> = {
  authority0: 'auth0',
  authority1: 'auth1',
  authority2: 'auth2',
  relay: 'relay',
  exit: 'exit',
};

class TorNetworkImpl implements TorNetwork {
  socksPort = 0;
  controlPort = 0;
  cookiePath = '';
  onionControlPort = 0;
  onionCookiePath = '';
  exitFingerprint = '';
  fingerprints = {} as Record<RelayRole, string>;
  nicknames = NICKNAMES;
  pids = {} as Record<TorRole, number>;
  dataDirs = {} as Record<TorRole, string>;
  onions: OnionInfo[] = [];
  dirAuthorityLines: string[] = [];
  timings: TorNetworkTimings = { descriptorsMs: 0, consensusMs: 0, bootstrapMs: 0, exitReadyMs: 0, onionReadyMs: {}, keysCached: false };
  stopped = false;

  readonly procs = new Map<TorRole, RoleProcess>();
  private onionCtl: TorControl | undefined;
  private readonly controls = new Set<TorControl>();
  private stopping: Promise<void> | undefined;

  constructor(
    readonly baseDir: string,
    private readonly removeBaseDir: boolean,
    private readonly torPath: string,
    private readonly log: (s: string) => void,
  ) {}

  get onionAddress(): string | undefined {
    return this.onions[0]?.address;
  }

  socksUrl(isolationKey?: string): string {
    const user = isolationKey === undefined ? randomCredential() : `iso-${isolationKey}`;
    const pass = isolationKey === undefined ? randomCredential() : `iso-${isolationKey}`;
    return `socks5h://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${this.socksPort}`;
  }

  roleOfFingerprint(fingerprint: string): RelayRole | undefined {
    const fp = fingerprint.replace(/^\$/, '').toUpperCase();
    return RELAY_ROLES.find((r) => this.fingerprints[r] === fp);
  }

  logTail(role: TorRole, lines = 20): string {
    const p = this.procs.get(role);
    if (!p) return '';
    let text = '';
    try {
      text = readFileSync(path.join(p.dataDir, 'notice.log'), 'utf8');
    } catch {
      /* not yet written */
    }
    return tailLines(p.output + text, lines);
  }

  ownerOfPeerPort(peerPort: number, serverPort?: number): PeerOwner | undefined {
    const ours = new Map<number, TorRole>();
    for (const [role, p] of this.procs) if (p.live.child.pid !== undefined) ours.set(p.live.child.pid, role);
    const pid = ownerOfLocalPort(peerPort, serverPort, [...ours.keys()]);
    if (pid === undefined) return undefined;
    return { pid, role: ours.get(pid) ?? 'other' };
  }

  // ----- processes

  spawnTor(role: TorRole, dataDir: string, torrc: string): RoleProcess {
    if (this.stopped) throw new Error('tor network stopped');
    const torrcPath = path.join(dataDir, 'torrc');
    // Written synchronously: spawn order and timing matter for the first vote.
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700);
    writeFileSync(torrcPath, torrc, { mode: 0o600 });
    const child = spawn(this.torPath, ['--defaults-torrc', path.join(this.baseDir, 'empty-torrc'), '-f', torrcPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const live: LiveProcess = { child, exited: false };
    liveProcesses.add(live);
    const rp: RoleProcess = {
      role,
      dataDir,
      live,
      output: '',
      exitPromise: new Promise<void>((resolve) => {
        child.once('exit', () => {
          live.exited = true;
          liveProcesses.delete(live);
          resolve();
        });
        child.once('error', (e) => {
          rp.output += `spawn error: ${e.message}\n`;
          live.exited = true;
          liveProcesses.delete(live);
          resolve();
        });
      }),
    };
    const keep = (d: Buffer) => {
      rp.output = (rp.output + d.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.procs.set(role, rp);
    if (child.pid !== undefined) this.pids[role] = child.pid;
    this.dataDirs[role] = dataDir;
    return rp;
  }

  /** Rejects as soon as any tor process exits (used while starting). */
  watchForEarlyExit(): { promise: Promise<never>; cancel: () => void } {
    let cancelled = false;
    const promise = new Promise<never>((_, reject) => {
      for (const p of this.procs.values()) {
        void p.exitPromise.then(() => {
          if (!cancelled && !this.stopped) {
            const code = p.live.child.exitCode ?? p.live.child.signalCode;
            reject(new Error(`tor ${p.role} exited during start (${code}):\n${this.logTail(p.role, 25)}`));
          }
        });
      }
    });
    promise.catch(() => undefined);
    return { promise, cancel: () => (cancelled = true) };
  }

  async control(role: TorRole): Promise<TorControl> {
    const p = this.procs.get(role);
    if (!p) throw new Error(`no tor process for ${role}`);
    const cookie = path.join(p.dataDir, 'control_auth_cookie');
    const port = this.portsControl[role];
    const ctl = await TorControl.connect(port, cookie);
    this.controls.add(ctl);
    ctl.once('close', () => this.controls.delete(ctl));
    return ctl;
  }

  portsControl = {} as Record<TorRole, number>;

  // ----- onions

  async onionControl(): Promise<TorControl> {
    if (!this.onionCtl) {
      const ctl = await this.control('onionService');
      await ctl.setEvents(['HS_DESC']);
      ctl.on('close', () => {
        if (this.onionCtl === ctl) this.onionCtl = undefined;
      });
      this.onionCtl = ctl;
    }
    return this.onionCtl;
  }

  async addOnion(localPort: number, opts: AddOnionOptions = {}): Promise<string> {
    if (this.stopped) throw new Error('tor network stopped');
    const virtualPort = opts.virtualPort ?? 80;
    const host = opts.host ?? '127.0.0.1';
    const waitFor = opts.waitFor ?? 'uploaded';
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const ctl = await this.onionControl();
    let serviceId = '';
    const early: string[][] = [];
    const uploadedTo = new Set<string>();
    let resolveUploaded!: () => void;
    const uploaded = new Promise<void>((r) => (resolveUploaded = r));
    let graceTimer: NodeJS.Timeout | undefined;
    const onUploaded = (w: string[]) => {
      // 650 HS_DESC UPLOADED <address> <auth> <hsdir> …
      uploadedTo.add(w[4] ?? '');
      // Every HSDir (the three authorities) has it, or some has it and 3 s passed.
      if (uploadedTo.size >= AUTHORITY_ROLES.length) resolveUploaded();
      else graceTimer ??= setTimeout(resolveUploaded, 3000);
    };
    const onEvent = (e: ControlEvent) => {
      const w = e.line.split(' ');
      if (w[0] !== 'HS_DESC' || w[1] !== 'UPLOADED') return;
      if (!serviceId) early.push(w);
      else if (w[2] === serviceId) onUploaded(w);
    };
    ctl.on('event', onEvent);
    try {
      const reply = await ctl.command(
        `ADD_ONION NEW:ED25519-V3 Flags=Detach,DiscardPK Port=${virtualPort},${host}:${localPort}`,
      );
      serviceId = reply.lines.find((l) => l.startsWith('ServiceID='))?.slice('ServiceID='.length) ?? '';
      if (!serviceId) throw new Error(`ADD_ONION: no ServiceID in ${JSON.stringify(reply.lines)}`);
      for (const w of early) if (w[2] === serviceId) onUploaded(w);
      const address = `${serviceId}.onion`;
      this.log(`onion ${address} → ${host}:${localPort}`);
      if (waitFor === 'none') return address;
      await withTimeout(uploaded, timeoutMs, () => `onion ${address}: descriptor not uploaded within ${timeoutMs} ms\n${this.logTail('onionService', 25)}`);
      this.log(`onion ${address}: descriptor uploaded to ${uploadedTo.size} HSDir(s)`);
      if (waitFor === 'reachable') {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          try {
            const { socket } = await socks5Connect({
              socksPort: this.socksPort,
              host: address,
              port: virtualPort,
              username: randomCredential(),
              password: randomCredential(),
              timeoutMs: Math.max(1000, deadline - Date.now()),
            });
            socket.destroy();
            break;
          } catch (e) {
            if (Date.now() > deadline) {
              throw new Error(`onion ${address} not reachable within ${timeoutMs} ms: ${(e as Error).message}\n${this.logTail('client', 25)}`);
            }
            await sleep(500);
          }
        }
      }
      return address;
    } finally {
      clearTimeout(graceTimer);
      ctl.off('event', onEvent);
    }
  }

  async removeOnion(address: string): Promise<void> {
    const ctl = await this.onionControl();
    await ctl.command(`DEL_ONION ${address.replace(/\.onion$/, '')}`);
    this.onions = this.onions.filter((o) => o.address !== address);
  }

  // ----- streams and circuits

  private hopInfo(h: { fingerprint: string; nickname?: string }): CircuitHopInfo {
    const hop: CircuitHopInfo = { fingerprint: h.fingerprint };
    if (h.nickname !== undefined) hop.nickname = h.nickname;
    const role = this.roleOfFingerprint(h.fingerprint);
    if (role) hop.role = role;
    return hop;
  }

  async watchStreams(): Promise<StreamWatcher> {
    const ctl = await this.control('client');
    const seen: StreamCircuit[] = [];
    const consumed = new Set<StreamCircuit>();
    const waiters = new Set<() => void>();
    let closed = false;
    const requested = new Map<string, string>();
    ctl.on('event', (e: ControlEvent) => {
      // 650 STREAM <StreamID> <Status> <CircuitID> <Target> [KEY=VALUE …]
      if (e.type !== 'STREAM') return;
      const w = splitQuoted(e.line);
      const [, streamId = '', status = '', circuitId = '', rawTarget = ''] = w;
      if (status === 'NEW') requested.set(streamId, rawTarget);
      if (status === 'CLOSED' || status === 'FAILED') requested.delete(streamId);
      if (status !== 'SUCCEEDED') return;
      const streamFields = parseFields(w.slice(5));
      // For exit streams tor remaps the target to `<ip>.<exit fingerprint>.exit:<port>`;
      // report what the application asked for.
      const target = requested.get(streamId) ?? rawTarget.replace(/\.[0-9A-F]{40}\.exit(?=:\d+$)/, '');
      // Ask at once, while the circuit surely exists; replies come in order.
      ctl
        .getInfo('circuit-status')
        .then((text) => {
          const all = parseCircuitStatus(text);
          const circ: CircuitStatus | undefined = all.find((c) => c.id === circuitId);
          const confluxId = circ?.fields['CONFLUX_ID'];
          const sc: StreamCircuit = {
            streamId,
            circuitId,
            target,
            rawTarget,
            purpose: circ?.fields['PURPOSE'] ?? '',
            hops: (circ?.hops ?? []).map((h) => this.hopInfo(h)),
            circuitFields: circ?.fields ?? {},
            streamFields,
            legs: confluxId
              ? all.filter((c) => c.fields['CONFLUX_ID'] === confluxId).map((c) => ({ circuitId: c.id, hops: c.hops.map((h) => this.hopInfo(h)) }))
              : [{ circuitId, hops: (circ?.hops ?? []).map((h) => this.hopInfo(h)) }],
          };
          if (confluxId) sc.confluxId = confluxId;
          const user = streamFields['SOCKS_USERNAME'] ?? circ?.fields['SOCKS_USERNAME'];
          const pass = streamFields['SOCKS_PASSWORD'] ?? circ?.fields['SOCKS_PASSWORD'];
          if (user !== undefined) sc.socksUsername = user;
          if (pass !== undefined) sc.socksPassword = pass;
          seen.push(sc);
          for (const w of [...waiters]) w();
        })
        .catch(() => undefined);
    });
    await ctl.setEvents(['STREAM']);
    const matches = (sc: StreamCircuit, f: StreamFilter) =>
      f.target === undefined || (typeof f.target === 'string' ? sc.target === f.target : f.target.test(sc.target));
    return {
      seen,
      next: (filter: StreamFilter = {}) =>
        new Promise<StreamCircuit>((resolve, reject) => {
          const timeoutMs = filter.timeoutMs ?? 30_000;
          const check = () => {
            const hit = seen.find((sc) => !consumed.has(sc) && matches(sc, filter));
            if (hit) {
              consumed.add(hit);
              cleanup();
              resolve(hit);
            } else if (closed) {
              cleanup();
              reject(new Error('stream watcher closed'));
            }
          };
          const timer = setTimeout(() => {
            cleanup();
            reject(new Error(`no SUCCEEDED stream matching ${String(filter.target ?? '*')} within ${timeoutMs} ms`));
          }, timeoutMs);
          const cleanup = () => {
            clearTimeout(timer);
            waiters.delete(check);
          };
          waiters.add(check);
          check();
        }),
      close: () => {
        closed = true;
        ctl.close();
        for (const w of [...waiters]) w();
      },
    };
  }

  async traceStream<T>(action: () => Promise<T>, filter: StreamFilter = {}): Promise<{ result: T; circuit: StreamCircuit }> {
    const watcher = await this.watchStreams();
    try {
      const result = await action();
      const circuit = await watcher.next(filter);
      return { result, circuit };
    } finally {
      watcher.close();
    }
  }

  // ----- stop

  stop(): Promise<void> {
    if (!this.stopping) this.stopping = this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.stopped = true;
    for (const c of this.controls) c.close();
    const procs = [...this.procs.values()];
    for (const p of procs) {
      if (!p.live.exited) p.live.child.kill('SIGTERM');
    }
    const grace = sleep(1500).then(() => 'timeout' as const);
    await Promise.race([Promise.all(procs.map((p) => p.exitPromise)), grace]);
    for (const p of procs) {
      if (!p.live.exited) {
        this.log(`tor ${p.role} ignored SIGTERM; SIGKILL`);
        p.live.child.kill('SIGKILL');
      }
    }
    await Promise.all(procs.map((p) => p.exitPromise));
    if (this.removeBaseDir) {
      await rm(this.baseDir, { recursive: true, force: true }).catch(() => undefined);
      tempDirsToRemove.delete(this.baseDir);
    } else {
      // A kept directory is not stale: later starts must not remove it.
      await rm(path.join(this.baseDir, 'owner-pid'), { force: true });
    }
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
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

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, deadline: number, intervalMs = 200): Promise<T> {
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Nicknames listed in a consensus, and whether the exit carries the Exit flag. */
function consensusRelays(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('r ')) {
      current = line.split(' ')[1];
      if (current) out.set(current, []);
    } else if (line.startsWith('s ') && current) {
      out.set(current, line.slice(2).split(' '));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------

export async function startTorNetwork(opts: StartTorNetworkOptions = {}): Promise<TorNetwork> {
  const t0 = Date.now();
  const deadline = t0 + (opts.timeoutMs ?? 60_000);
  try {
    return await startOnce(opts, t0, deadline);
  } catch (e) {
    // Ports are picked free and then released for tor to bind: another process may take
    // one in between. Start once more, on fresh ports, if that is what went wrong.
    if (!/Address already in use|Could not bind/i.test((e as Error).message) || Date.now() > deadline - 20_000) throw e;
    (opts.log ?? (() => undefined))('a port was taken meanwhile; starting again on fresh ports');
    return await startOnce(opts, t0, deadline);
  }
}

async function startOnce(opts: StartTorNetworkOptions, t0: number, deadline: number): Promise<TorNetwork> {
  const log = opts.log ?? (() => undefined);
  const torPath = opts.torPath ?? 'tor';
  const gencert = opts.torGencertPath ?? 'tor-gencert';
  checkTool(torPath);
  installExitHook();

  let baseDir: string;
  let removeBaseDir: boolean;
  if (opts.baseDir) {
    const parent = path.resolve(opts.baseDir);
    await mkdir(parent, { recursive: true, mode: 0o700 });
    baseDir = await mkdtemp(path.join(parent, 'tornet-'));
    removeBaseDir = false;
  } else {
    await removeStaleTempDirs();
    baseDir = await mkdtemp(path.join(os.tmpdir(), TEMP_PREFIX));
    removeBaseDir = !(opts.keepDataDir || process.env['LLMTOR_TORNET_KEEP'] === '1');
    if (removeBaseDir) tempDirsToRemove.add(baseDir);
  }
  await chmod(baseDir, 0o700);
  await writeFile(path.join(baseDir, 'empty-torrc'), '');
  await writeFile(path.join(baseDir, 'owner-pid'), `${process.pid}\n`);

  const netw = new TorNetworkImpl(baseDir, removeBaseDir, torPath, log);
  const early = netw.watchForEarlyExit.bind(netw);
  let exitWatch: { promise: Promise<never>; cancel: () => void } | undefined;
  const probeServer = http.createServer();

  try {
    // --- keys and ports
    const { keys, cached } = await authorityKeys(
      opts.keyCacheDir === undefined ? defaultKeyCacheDir() : opts.keyCacheDir,
      baseDir,
      torPath,
      gencert,
    );
    netw.timings.keysCached = cached;
    log(`authority keys ${cached ? 'from cache' : 'generated'} (${Date.now() - t0} ms)`);

    const p = await freePorts(3 * 2 + 5 + 7 + 1);
    let i = 0;
    const next = () => p[i++]!;
    const ports: Ports = {
      or: { authority0: next(), authority1: next(), authority2: next(), relay: next(), exit: next() },
      dir: { authority0: next(), authority1: next(), authority2: next() },
      control: {
        authority0: next(), authority1: next(), authority2: next(), relay: next(), exit: next(),
        client: next(), onionService: next(),
      },
      socks: next(),
    };
    netw.portsControl = ports.control;
    netw.socksPort = ports.socks;
    netw.controlPort = ports.control.client;
    netw.onionControlPort = ports.control.onionService;

    const relayAddress = opts.relayAddress ?? '127.0.0.1';
    const dirAuthorityLines = AUTHORITY_ROLES.map((role, k) => {
      const key = keys[k]!;
      return `DirAuthority ${key.nickname} orport=${ports.or[role]} no-v2 v3ident=${key.v3ident} ${relayAddress}:${ports.dir[role]} ${key.fingerprint}`;
    });
    AUTHORITY_ROLES.forEach((role, k) => (netw.fingerprints[role] = keys[k]!.fingerprint));
    netw.dirAuthorityLines = dirAuthorityLines;

    const envLevel = process.env['LLMTOR_TORNET_LOGLEVEL'] ?? '';
    const logLevel = /^(debug|info|notice|warn|err)$/.test(envLevel) ? envLevel : 'notice';
    const common = (role: TorRole, dataDir: string) => [
      'TestingTorNetwork 1',
      `DataDirectory ${dataDir}`,
      `Log ${logLevel} file ${path.join(dataDir, 'notice.log')}`,
      'GeoIPFile ""',
      'GeoIPv6File ""',
      `ControlPort 127.0.0.1:${ports.control[role]}`,
      'CookieAuthentication 1',
      'ShutdownWaitLength 0',
      'ClientUseIPv6 0',
      `__OwningControllerProcess ${process.pid}`,
      ...dirAuthorityLines,
    ];
    const relayLines = (role: RelayRole) => [
      `Nickname ${NICKNAMES[role]}`,
      `ORPort ${relayAddress}:${ports.or[role]}`,
      `Address ${relayAddress}`,
      'AssumeReachable 1',
      'SocksPort 0',
    ];

    // --- authorities: copy the cached keys
    const authDirs = AUTHORITY_ROLES.map((role) => path.join(baseDir, role));
    for (const [k, dd] of authDirs.entries()) {
      const key = keys[k]!;
      await mkdir(path.join(dd, 'keys'), { recursive: true, mode: 0o700 });
      for (const f of await readdir(path.join(key.dir, 'keys'))) {
        await copyFile(path.join(key.dir, 'keys', f), path.join(dd, 'keys', f));
      }
      for (const f of ['authority_certificate', 'authority_signing_key']) {
        await copyFile(path.join(key.dir, f), path.join(dd, 'keys', f));
      }
    }
    // Voting: intervals of 20 s; votes go out VoteDelay+DistDelay = 4 s before an interval
    // starts, and intervals start at times ≡ TestingV3AuthVotingStartOffset (mod 20).
    // Relays upload their descriptors 2–8 s after they start (the more load, the later);
    // one that misses the first vote waits a whole interval for the next consensus. So the
    // first vote is scheduled ~16 s ahead (a fallback), and moved to ~1 s ahead with SETCONF
    // once every authority holds every descriptor (below). Measured at load 4–10 on
    // 2 vCPUs: a fixed first vote after 3 s gave a full consensus after 7.1–15.6 s (every
    // 5th run missed the first vote); after 4 s, 7.3–11.7 s; adaptive with a fallback at
    // 6 s (10 s intervals), 8.6–10.3 s but 19–20 s when descriptors took longer than 6 s.
    const votingInterval = 20;
    const fallbackT = Math.floor(Date.now() / 1000) + votingInterval;
    const hsdirs = keys.map((k) => k.fingerprint).join(',');
    for (const [k, role] of AUTHORITY_ROLES.entries()) {
      const dd = authDirs[k]!;
      netw.spawnTor(role, dd, [
        ...common(role, dd),
        ...relayLines(role),
        `DirPort ${relayAddress}:${ports.dir[role]}`,
        'ExitRelay 0',
        'AuthoritativeDirectory 1',
        'V3AuthoritativeDirectory 1',
        `TestingV3AuthInitialVotingInterval ${votingInterval}`,
        'TestingV3AuthInitialVoteDelay 2',
        'TestingV3AuthInitialDistDelay 2',
        `TestingV3AuthVotingStartOffset ${fallbackT % votingInterval}`,
        `V3AuthVotingInterval ${votingInterval}`,
        'V3AuthVoteDelay 2',
        'V3AuthDistDelay 2',
        'V3AuthNIntervalsValid 2',
        'TestingDirAuthVoteGuard *',
        'TestingDirAuthVoteExit *',
        `TestingDirAuthVoteHSDir ${hsdirs}`,
        'TestingMinExitFlagThreshold 0',
        '',
      ].join('\n'));
    }
    // --- relays
    const relayDir = path.join(baseDir, 'relay');
    netw.spawnTor('relay', relayDir, [...common('relay', relayDir), ...relayLines('relay'), 'DirCache 0', 'ExitRelay 0', ''].join('\n'));
    const exitDir = path.join(baseDir, 'exit');
    netw.spawnTor('exit', exitDir, [
      ...common('exit', exitDir),
      ...relayLines('exit'),
      'DirCache 0',
      'ExitRelay 1',
      'ExitPolicy accept 127.0.0.0/8:*',
      'ExitPolicy reject *:*',
      'ExitPolicyRejectPrivate 0',
      'RefuseUnknownExits 0',
      'ServerDNSResolvConfFile /dev/null',
      '',
    ].join('\n'));
    log('authorities and relays started');
    exitWatch = early();

    const race = <T>(pr: Promise<T>) => Promise.race([pr, exitWatch!.promise]);
    const wanted = Object.values(NICKNAMES);
    const controlReady = (role: TorRole) =>
      waitFor(`${role} control port`, async () => {
        try {
          return await netw.control(role);
        } catch {
          return undefined;
        }
      }, deadline, 100);

    // relay fingerprints, written by tor at startup
    for (const role of ['relay', 'exit'] as const) {
      const fpFile = path.join(baseDir, role, 'fingerprint');
      netw.fingerprints[role] = await race(
        waitFor(`${role} fingerprint`, async () => {
          try {
            return /([0-9A-F]{40})/.exec(await readFile(fpFile, 'utf8'))?.[1];
          } catch {
            return undefined;
          }
        }, deadline, 50),
      );
    }
    netw.exitFingerprint = netw.fingerprints.exit;

    // --- once every authority holds every relay's descriptor, vote (almost) at once
    const authCtls = await race(Promise.all(AUTHORITY_ROLES.map((r) => controlReady(r))));
    await race(
      waitFor('authorities holding every relay descriptor', async () => {
        for (const c of authCtls) {
          const text = await c.getInfo('desc/all-recent').catch(() => '');
          const have = new Set([...text.matchAll(/^router (\S+) /gm)].map((m) => m[1]));
          if (!wanted.every((n) => have.has(n))) return undefined;
        }
        return true;
      }, deadline, 150),
    );
    netw.timings.descriptorsMs = Date.now() - t0;
    {
      const now = Date.now() / 1000;
      const t = Math.ceil(now + 4.5); // the vote ≥ 0.5 s from now
      if (t < fallbackT) {
        // Rescheduling is safe: no vote has happened yet (fallbackT - 4 > t - 4 > now).
        await race(Promise.all(authCtls.map((c) => c.command(`SETCONF TestingV3AuthVotingStartOffset=${t % votingInterval}`))));
      }
      log(`authorities hold every descriptor (${Date.now() - t0} ms); first vote in ${(Math.min(t, fallbackT) - 4 - now).toFixed(1)} s`);
    }
    for (const c of authCtls) c.close();

    // --- wait for a consensus that lists every relay (clients started earlier back off)
    await race(
      waitFor('a consensus listing every relay', async () => {
        for (const dd of authDirs) {
          let text: string;
          try {
            text = await readFile(path.join(dd, 'cached-consensus'), 'utf8');
          } catch {
            continue;
          }
          const relays = consensusRelays(text);
          if (wanted.every((n) => relays.has(n)) && relays.get(NICKNAMES.exit)?.includes('Exit')) return true;
        }
        return undefined;
      }, deadline, 200),
    );
    netw.timings.consensusMs = Date.now() - t0;
    log(`consensus lists every relay (${netw.timings.consensusMs} ms)`);

    // --- client and onion service
    const clientDir = path.join(baseDir, 'client');
    const onionDir = path.join(baseDir, 'onionService');
    const clientSide = (role: TorRole, dd: string) => [
      ...common(role, dd),
      'UseMicrodescriptors 0',
      'PathsNeededToBuildCircuits 0.67',
      // With five relays, onion circuits (whose guard is not chosen to avoid their last
      // hop) often end at their own guard: guard → middle → guard. The middle refuses to
      // extend back, and a client stuck on such a rendezvous point retried once a second
      // for 15–30 s (1 onion fetch in ~8). Without entry guards the first hop excludes
      // the last one (vanguards-lite needs guards, so it goes too).
      'UseEntryGuards 0',
      'VanguardsLiteEnabled 0',
    ];
    netw.spawnTor('client', clientDir, [...clientSide('client', clientDir), `SocksPort 127.0.0.1:${ports.socks}`, ''].join('\n'));
    netw.spawnTor('onionService', onionDir, [...clientSide('onionService', onionDir), 'SocksPort 0', ''].join('\n'));
    netw.cookiePath = path.join(clientDir, 'control_auth_cookie');
    netw.onionCookiePath = path.join(onionDir, 'control_auth_cookie');
    exitWatch.cancel();
    exitWatch = early();

    // onions requested at start: ADD_ONION as soon as the service's control port is up
    const targets: OnionTarget[] = [
      ...(opts.onionTargetPort !== undefined ? [{ localPort: opts.onionTargetPort }] : []),
      ...(opts.onionTargets ?? []).map((t) => (typeof t === 'number' ? { localPort: t } : t)),
    ];
    const onionsDone = (async () => {
      if (targets.length === 0) return;
      (await controlReady('onionService')).close();
      const addrs = await Promise.all(
        targets.map(async (t) => {
          const o: AddOnionOptions = { timeoutMs: Math.max(1000, deadline - Date.now()) };
          if (t.virtualPort !== undefined) o.virtualPort = t.virtualPort;
          if (t.host !== undefined) o.host = t.host;
          const address = await netw.addOnion(t.localPort, o);
          netw.timings.onionReadyMs[address] = Date.now() - t0;
          return { address, localPort: t.localPort, virtualPort: t.virtualPort ?? 80 };
        }),
      );
      netw.onions.push(...addrs);
    })();
    onionsDone.catch(() => undefined);

    // client bootstrap
    const clientCtl = await race(controlReady('client'));
    await race(
      waitFor('client bootstrap 100%', async () => {
        const phase = await clientCtl.getInfo('status/bootstrap-phase');
        return /PROGRESS=100\b/.test(phase) ? true : undefined;
      }, deadline, 200),
    );
    clientCtl.close();
    netw.timings.bootstrapMs = Date.now() - t0;
    log(`client bootstrapped (${netw.timings.bootstrapMs} ms)`);

    // a real fetch through the exit to a throwaway local server
    const token = randomCredential();
    let probePeer: PeerOwner | undefined;
    probeServer.on('request', (req, res) => {
      probePeer = netw.ownerOfPeerPort(req.socket.remotePort ?? 0, (probeServer.address() as net.AddressInfo).port);
      res.end(token);
    });
    await new Promise<void>((r) => probeServer.listen(0, '127.0.0.1', () => r()));
    const probePort = (probeServer.address() as net.AddressInfo).port;
    let lastError = '';
    if (opts.exitProbe !== false) await race(
      waitFor('a fetch through the exit', async () => {
        try {
          const text = await socksHttpGet(netw.socksPort, '127.0.0.1', probePort, '/probe', Math.min(10_000, Math.max(1000, deadline - Date.now())));
          if (text.includes(token)) return true;
          lastError = `unexpected response ${JSON.stringify(text.slice(0, 200))}`;
        } catch (e) {
          lastError = (e as Error).message;
        }
        return undefined;
      }, deadline, 300),
    ).catch((e: Error) => {
      throw new Error(`${e.message} (last error: ${lastError})`);
    });
    netw.timings.exitReadyMs = Date.now() - t0;
    log(`exit fetch ok via ${probePeer?.role ?? '?'} (${netw.timings.exitReadyMs} ms)`);

    await race(withTimeout(onionsDone, Math.max(1, deadline - Date.now()), () => `timed out waiting for onion descriptors`));
    exitWatch.cancel();
    return netw;
  } catch (e) {
    exitWatch?.cancel();
    const tails = TOR_ROLES.filter((r) => netw.procs.has(r))
      .map((r) => `--- ${r} ---\n${netw.logTail(r, 12)}`)
      .join('\n');
    await netw.stop();
    throw new Error(`tor test network failed to start after ${Date.now() - t0} ms: ${(e as Error).message}\n${tails}`);
  } finally {
    probeServer.close();
  }
}

/** The running private Tor network: its tor processes, onions, stream tracing and stop. */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ownerOfLocalPort } from './procTcp.js';
import { socks5Connect } from './socks5.js';
import { NICKNAMES } from './torrc.js';
import { parseCircuitStatus, splitQuoted, TorControl, type CircuitStatus, type ControlEvent } from './torControl.js';
import {
  AUTHORITY_ROLES,
  RELAY_ROLES,
  type AddOnionOptions,
  type CircuitHopInfo,
  type OnionInfo,
  type PeerOwner,
  type RelayRole,
  type StreamCircuit,
  type StreamFilter,
  type StreamWatcher,
  type TorNetwork,
  type TorNetworkTimings,
  type TorRole,
} from './torNetworkTypes.js';
import {
  liveProcesses,
  parseFields,
  randomCredential,
  tailLines,
  tempDirsToRemove,
  withTimeout,
  type LiveProcess,
} from './tornetSupport.js';

interface RoleProcess {
  role: TorRole;
  dataDir: string;
  live: LiveProcess;
  exitPromise: Promise<void>;
  output: string;
}

export class TorNetworkImpl implements TorNetwork {
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
  hopDelay: TorNetwork['hopDelay'] = undefined;
  /** Run after every tor has exited (e.g. closing the delaying forwarders). */
  readonly cleanups: Array<() => Promise<void>> = [];

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
    // tor's own stdout/stderr apart from its log file: an error printed there (before the
    // log file is set up, or by a crash) would otherwise be pushed out of the tail by the file.
    const own = p.output.trim() ? `${tailLines(p.output, Math.min(lines, 10))}\n[log file]\n` : '';
    return `${own}${tailLines(text, lines)}`;
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
        // 'close', not 'exit': by then tor's last words on stdout/stderr have been read.
        child.once('close', () => {
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
    await Promise.all(this.cleanups.map((c) => c().catch(() => undefined)));
    if (this.removeBaseDir) {
      await rm(this.baseDir, { recursive: true, force: true }).catch(() => undefined);
      tempDirsToRemove.delete(this.baseDir);
    } else {
      // A kept directory is not stale: later starts must not remove it.
      await rm(path.join(this.baseDir, 'owner-pid'), { force: true });
    }
  }
}

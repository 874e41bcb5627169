/**
 * Runs a `tor` binary for the extension: its own data directory, a SOCKS port on loopback
 * chosen at start (IsolateSOCKSAuth, so random credentials give fresh circuits), bootstrap
 * progress parsed from tor's log on stdout, restart with back-off if it dies, and
 * `__OwningControllerProcess` so tor exits by itself if the extension host goes away.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { SocksEndpoint } from './torTransport.js';

export type TorState =
  | { kind: 'stopped' }
  | { kind: 'starting' }
  | { kind: 'bootstrapping'; progress: number; summary: string }
  | { kind: 'ready'; socks: SocksEndpoint }
  | { kind: 'failed'; message: string };

export interface TorSupervisorOptions {
  torPath: string;
  dataDir: string;
  /** Extra torrc lines (bridges, a private test network's DirAuthority lines, …). */
  extraTorrc?: string[];
  /** Give up a start after this long without reaching 100 % (default 120 s). */
  bootstrapTimeoutMs?: number;
  /** Restarts after unexpected exits before staying failed (default 3). */
  maxRestarts?: number;
}

/** Parses tor's "Bootstrapped 45% (loading_descriptors): Loading relay descriptors" line. */
export function parseBootstrapLine(line: string): { progress: number; tag: string; summary: string } | undefined {
  const m = /Bootstrapped (\d{1,3})%(?: \(([a-z_]+)\))?: (.*)$/.exec(line);
  if (!m) return undefined;
  return { progress: Math.min(100, Number(m[1])), tag: m[2] ?? '', summary: m[3]!.trim() };
}

export function torrcFor(o: { dataDir: string; socksPort: number; ownerPid: number; extra?: readonly string[] }): string {
  return [
    `DataDirectory ${o.dataDir}`,
    `SocksPort 127.0.0.1:${o.socksPort} IsolateSOCKSAuth`,
    'ControlPort 0',
    'Log notice stdout',
    `__OwningControllerProcess ${o.ownerPid}`,
    'AvoidDiskWrites 1',
    ...(o.extra ?? []),
    '',
  ].join('\n');
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export class TorSupervisor extends EventEmitter {
  private child: ChildProcess | undefined;
  private _state: TorState = { kind: 'stopped' };
  private restarts = 0;
  private stopping = false;
  private readyWaiters: { resolve: (s: SocksEndpoint) => void; reject: (e: Error) => void }[] = [];
  private bootTimer: NodeJS.Timeout | undefined;
  private logTail: string[] = [];

  constructor(private readonly o: TorSupervisorOptions) {
    super();
  }

  /** The running tor's process id (undefined when none runs). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get state(): TorState {
    return this._state;
  }

  /** Recent tor log lines (tor's own notices; no request data is in them). */
  get log(): readonly string[] {
    return this.logTail;
  }

  private setState(s: TorState): void {
    this._state = s;
    this.emit('state', s);
    if (s.kind === 'ready') for (const w of this.readyWaiters.splice(0)) w.resolve(s.socks);
    if (s.kind === 'failed') for (const w of this.readyWaiters.splice(0)) w.reject(new Error(s.message));
  }

  /** Starts tor (if not running) and resolves with its SOCKS endpoint once bootstrapped. */
  start(): Promise<SocksEndpoint> {
    if (this._state.kind === 'ready') return Promise.resolve(this._state.socks);
    const p = new Promise<SocksEndpoint>((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    if (!this.child) {
      this.stopping = false;
      this.restarts = 0;
      void this.spawnTor();
    }
    return p;
  }

  private async spawnTor(): Promise<void> {
    this.setState({ kind: 'starting' });
    let port: number;
    try {
      mkdirSync(this.o.dataDir, { recursive: true, mode: 0o700 });
      port = await freeLoopbackPort();
    } catch (e) {
      this.setState({ kind: 'failed', message: `cannot prepare tor: ${(e as Error).message}` });
      return;
    }
    const torrc = path.join(this.o.dataDir, 'torrc');
    writeFileSync(torrc, torrcFor({ dataDir: this.o.dataDir, socksPort: port, ownerPid: process.pid, extra: this.o.extraTorrc ?? [] }), { mode: 0o600 });
    // An empty defaults file: the system's /etc/tor/torrc-defaults must not add a second SocksPort.
    const defaults = path.join(this.o.dataDir, 'torrc-defaults');
    writeFileSync(defaults, '', { mode: 0o600 });
    const child = spawn(this.o.torPath, ['--defaults-torrc', defaults, '-f', torrc], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let buf = '';
    const onText = (d: Buffer) => {
      buf += d.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trimEnd();
        buf = buf.slice(i + 1);
        this.logTail.push(line);
        if (this.logTail.length > 50) this.logTail.shift();
        const b = parseBootstrapLine(line);
        if (b) {
          if (b.progress >= 100) {
            clearTimeout(this.bootTimer);
            this.restarts = 0;
            this.setState({ kind: 'ready', socks: { host: '127.0.0.1', port } });
          } else {
            this.setState({ kind: 'bootstrapping', progress: b.progress, summary: b.summary });
          }
        }
      }
    };
    child.stdout?.on('data', onText);
    child.stderr?.on('data', onText);
    this.bootTimer = setTimeout(() => {
      if (this._state.kind !== 'ready') {
        this.setState({ kind: 'failed', message: `tor did not finish bootstrapping within ${(this.o.bootstrapTimeoutMs ?? 120_000) / 1000} s; last log: ${this.logTail.slice(-3).join(' | ')}` });
        child.kill('SIGKILL');
      }
    }, this.o.bootstrapTimeoutMs ?? 120_000);
    child.once('error', (e) => {
      clearTimeout(this.bootTimer);
      this.child = undefined;
      this.setState({ kind: 'failed', message: `cannot run ${this.o.torPath}: ${e.message}` });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(this.bootTimer);
      if (this.child === child) this.child = undefined;
      if (this.stopping) {
        this.setState({ kind: 'stopped' });
        return;
      }
      if (this._state.kind === 'failed') return;
      if (this.restarts < (this.o.maxRestarts ?? 3)) {
        this.restarts++;
        const delay = 500 * 2 ** this.restarts;
        this.setState({ kind: 'bootstrapping', progress: 0, summary: `tor exited (${signal ?? code}); restarting in ${delay / 1000} s` });
        setTimeout(() => {
          if (!this.stopping) void this.spawnTor();
        }, delay).unref();
      } else {
        this.setState({ kind: 'failed', message: `tor keeps exiting (${signal ?? code}); last log: ${this.logTail.slice(-3).join(' | ')}` });
      }
    });
  }

  /** Stops tor (SIGTERM, then SIGKILL after a grace period). */
  async stop(graceMs = 3000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.bootTimer);
    const child = this.child;
    if (!child || child.exitCode !== null) {
      this.setState({ kind: 'stopped' });
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** Test hook: kill tor as a crash would. */
  crashForTest(): void {
    this.child?.kill('SIGKILL');
  }
}

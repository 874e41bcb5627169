/**
 * Which Tor the extension uses, from the settings: an existing SOCKS port (configured, or
 * auto-detected on 9050 / 9150), or a tor binary it starts and supervises. Publishes the
 * state for the status bar. Redemption asks `socks()` per request and fails if Tor is not
 * ready — there is no direct path to fall back to.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { detectSocks, speaksSocks5 } from '../core/torSource.js';
import { startOrJoin, watchShared } from '../core/sharedTor.js';
import type { TorState, TorSupervisor } from '../core/torSupervisor.js';
import { TorTransportError, type SocksEndpoint } from '../core/torTransport.js';

export type TorStatus = TorState & { source?: string };

export class TorManager implements vscode.Disposable {
  private supervisor: TorSupervisor | undefined;
  private endpoint: SocksEndpoint | undefined;
  private _status: TorStatus = { kind: 'stopped' };
  private readonly emitter = new vscode.EventEmitter<TorStatus>();
  readonly onDidChange = this.emitter.event;
  private starting: Promise<SocksEndpoint> | undefined;
  private watch: { dispose(): void } | undefined;

  constructor(private readonly storageDir: string) {}

  get status(): TorStatus {
    return this._status;
  }

  private set(s: TorStatus): void {
    this._status = s;
    this.emitter.fire(s);
  }

  /** The SOCKS endpoint for the next request; throws (no fallback) when Tor is not ready. */
  socks(): SocksEndpoint {
    if (this._status.kind === 'ready' && this.endpoint) return this.endpoint;
    void this.ensureStarted().catch(() => undefined);
    throw new TorTransportError('tor_unreachable', `Tor is not ready (${describe(this._status)}); nothing was sent`);
  }

  /** Starts (or finds) Tor according to the settings. */
  ensureStarted(): Promise<SocksEndpoint> {
    if (this._status.kind === 'ready' && this.endpoint) return Promise.resolve(this.endpoint);
    if (this.starting) return this.starting;
    const run = this.start().finally(() => {
      if (this.starting === run) this.starting = undefined;
    });
    this.starting = run;
    return run;
  }

  private async start(): Promise<SocksEndpoint> {
    const cfg = vscode.workspace.getConfiguration('llmtor.tor');
    const source = cfg.get<string>('source', 'auto');
    this.set({ kind: 'starting', source });
    if (source === 'socks') {
      const ep = { host: cfg.get<string>('socksHost', '127.0.0.1'), port: cfg.get<number>('socksPort', 9050) };
      if (!(await speaksSocks5(ep, 3000))) {
        this.set({ kind: 'failed', message: `no Tor SOCKS port answers at ${ep.host}:${ep.port}`, source });
        throw new TorTransportError('tor_unreachable', `no Tor SOCKS port answers at ${ep.host}:${ep.port}`);
      }
      return this.ready(ep, `SOCKS ${ep.host}:${ep.port}`);
    }
    if (source === 'auto') {
      const found = await detectSocks();
      if (found) return this.ready(found, `SOCKS ${found.host}:${found.port}`);
    }
    return this.startBinary(cfg);
  }

  private ready(ep: SocksEndpoint, source: string): SocksEndpoint {
    this.endpoint = ep;
    this.set({ kind: 'ready', socks: ep, source });
    return ep;
  }

  /** Runs tor, or uses the one another VS Code window runs on the same data directory (sharedTor.ts). */
  private async startBinary(cfg: vscode.WorkspaceConfiguration): Promise<SocksEndpoint> {
    await this.supervisor?.stop();
    this.supervisor = undefined;
    this.watch?.dispose();
    const dataDir = cfg.get<string>('dataDir') || path.join(this.storageDir, 'tor');
    return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'LLM-Tor: starting Tor' }, async (progress) => {
      let last = 0;
      const joined = await startOrJoin({
        torPath: cfg.get<string>('path', 'tor'),
        dataDir,
        extraTorrc: cfg.get<string[]>('extraTorrc', []),
        onSupervisor: (sup) => {
          this.supervisor = sup;
          sup.on('state', (s: TorState) => {
            if (this.supervisor !== sup) return;
            if (s.kind === 'ready') this.endpoint = s.socks;
            else this.endpoint = undefined;
            this.set({ ...s, source: 'tor (started by LLM-Tor)' });
            if (s.kind === 'bootstrapping') {
              progress.report({ increment: Math.max(0, s.progress - last), message: `${s.progress}% ${s.summary}` });
              last = s.progress;
            }
          });
        },
      }).catch((e: Error) => {
        this.set({ kind: 'failed', message: e.message, source: 'tor' });
        throw e;
      });
      if (joined.supervisor) return joined.socks;
      // Another window's tor: when it exits with its window, the next request starts a new one.
      this.watch = watchShared(joined.torPid, () => {
        if (this.endpoint !== joined.socks) return;
        this.endpoint = undefined;
        this.set({ kind: 'stopped' });
        void this.ensureStarted().catch(() => undefined);
      });
      return this.ready(joined.socks, 'tor shared with another VS Code window');
    });
  }

  async restart(): Promise<SocksEndpoint> {
    this.watch?.dispose();
    await this.supervisor?.stop();
    this.supervisor = undefined;
    this.endpoint = undefined;
    this.set({ kind: 'stopped' });
    return this.ensureStarted();
  }

  dispose(): void {
    this.watch?.dispose();
    void this.supervisor?.stop();
    this.emitter.dispose();
  }
}

export function describe(s: TorStatus): string {
  switch (s.kind) {
    case 'ready':
      return `connected (${s.source ?? 'Tor'})`;
    case 'bootstrapping':
      return `connecting ${s.progress}%`;
    case 'starting':
      return 'connecting';
    case 'failed':
      return `failed: ${s.message}`;
    case 'stopped':
      return 'not started';
  }
}

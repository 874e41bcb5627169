/**
 * A real VS Code for end-to-end tests: code-server (installed from npm by
 * scripts/install-code-server.sh into a cache outside the repository), started on a free
 * loopback port with its own HOME, user-data and extensions directories, extensions
 * installed from .vsix files, user settings written before start, and the extension
 * gallery pointed at a closed loopback port so nothing tries to leave the machine.
 *
 * API:
 *   codeServerBinary({ install? }) → path   the cached binary (runs the install script when
 *                                           `install` is true and it is missing)
 *   startCodeServer(opts) → CodeServer      resolves once /healthz answers
 *     opts: binary, vsix[] (installed with --install-extension), settings (User/settings.json),
 *           folder (opened as the workspace), env, timeoutMs, keepDir, log
 *   CodeServer: url, port, baseDir, userDataDir, extensionsDir, folder, pid, logTail(), stop()
 *
 * No code-server outlives its owner: stop() sends SIGTERM then SIGKILL to the process group,
 * and a process 'exit' hook kills whatever is left.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './redisServer.js';

export const CODE_SERVER_VERSION = process.env['CODE_SERVER_VERSION'] ?? '4.100.3';

function cacheDir(): string {
  return process.env['LLMTOR_CACHE'] ?? path.join(process.env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache'), 'llmtor');
}

/** Path of the cached code-server binary; installs it first if asked and missing. */
export function codeServerBinary(opts: { install?: boolean } = {}): string {
  const dir = path.join(cacheDir(), `code-server-${CODE_SERVER_VERSION}`);
  const bin = path.join(dir, 'node_modules', '.bin', 'code-server');
  if (existsSync(bin) && existsSync(path.join(dir, '.llmtor-complete'))) return bin;
  if (!opts.install) throw new Error(`code-server ${CODE_SERVER_VERSION} is not installed at ${bin}; run scripts/install-code-server.sh`);
  const script = fileURLToPath(new URL('../../install-code-server.sh', import.meta.url));
  const r = spawnSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000 });
  if (r.status !== 0) throw new Error(`install-code-server.sh failed (${r.status ?? r.signal}): ${(r.stderr ?? '').split('\n').slice(-20).join('\n')}`);
  return bin;
}

export interface StartCodeServerOptions {
  binary?: string;
  /** .vsix files to install into the fresh extensions directory. */
  vsix?: string[];
  /** Written to User/settings.json before start (merged over quiet defaults). */
  settings?: Record<string, unknown>;
  /** Folder to open (default: an empty folder in the base dir). */
  folder?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  keepDir?: boolean;
  log?: (s: string) => void;
}

export interface CodeServer {
  url: string;
  port: number;
  baseDir: string;
  userDataDir: string;
  extensionsDir: string;
  folder: string;
  pid: number;
  /** The workbench URL with the folder open. */
  workbenchUrl: string;
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid) process.kill(-c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

/** Quiet defaults: no welcome page, no trust prompt, no telemetry, no update checks. */
const DEFAULT_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'git.enabled': false,
  'chat.commandCenter.enabled': false,
};

function get(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export async function startCodeServer(opts: StartCodeServerOptions = {}): Promise<CodeServer> {
  hookExit();
  const binary = opts.binary ?? codeServerBinary();
  const baseDir = mkdtempSync(path.join(os.tmpdir(), 'llmtor-code-server-'));
  const dirs = {
    home: path.join(baseDir, 'home'),
    userData: path.join(baseDir, 'user-data'),
    extensions: path.join(baseDir, 'extensions'),
    xdg: path.join(baseDir, 'xdg'),
    folder: opts.folder ?? path.join(baseDir, 'workspace'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  mkdirSync(path.join(dirs.userData, 'User'), { recursive: true });
  writeFileSync(path.join(dirs.userData, 'User', 'settings.json'), JSON.stringify({ ...DEFAULT_SETTINGS, ...opts.settings }, null, 2));
  const port = await freePort();
  const galleryPort = await freePort(); // nothing listens there: gallery requests fail at once, locally
  const gallery = `http://127.0.0.1:${galleryPort}`;
  const configFile = path.join(baseDir, 'config.yaml');
  writeFileSync(configFile, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    LANG: 'C.UTF-8',
    ...opts.env,
    HOME: dirs.home,
    XDG_CONFIG_HOME: path.join(dirs.xdg, 'config'),
    XDG_DATA_HOME: path.join(dirs.xdg, 'data'),
    XDG_CACHE_HOME: path.join(dirs.xdg, 'cache'),
    EXTENSIONS_GALLERY: JSON.stringify({ serviceUrl: `${gallery}/gallery`, itemUrl: `${gallery}/items`, resourceUrlTemplate: `${gallery}/resource/{publisher}/{name}/{version}/{path}`, extensionUrlTemplate: `${gallery}/ext` }),
  };
  const common = ['--user-data-dir', dirs.userData, '--extensions-dir', dirs.extensions, '--config', configFile];
  for (const vsix of opts.vsix ?? []) {
    const r = spawnSync(binary, [...common, '--install-extension', vsix, '--force'], { env, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`code-server --install-extension ${vsix} failed: ${r.stderr || r.stdout}`);
    opts.log?.(`installed ${path.basename(vsix)}: ${r.stdout.trim().split('\n').at(-1) ?? ''}`);
  }
  const args = [
    ...common,
    '--bind-addr',
    `127.0.0.1:${port}`,
    '--auth',
    'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    dirs.folder,
  ];
  const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  live.add(child);
  let log = '';
  const onOut = (d: Buffer) => {
    log += d.toString('utf8');
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  child.stdout?.on('data', onOut);
  child.stderr?.on('data', onOut);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    live.delete(child);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (!exited && child.pid) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      const t = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 3000);
      await gone;
      clearTimeout(t);
    }
    if (!opts.keepDir && !process.env['LLMTOR_CODE_SERVER_KEEP']) rmSync(baseDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  while ((await get(`${url}/healthz`, 1000)) !== 200) {
    if (exited || Date.now() > deadline) {
      await stop();
      throw new Error(`code-server did not start (${exited ? 'exited' : 'timeout'}): ${log.split('\n').slice(-20).join('\n')}`);
    }
    await sleep(200);
  }
  opts.log?.(`code-server ${CODE_SERVER_VERSION} at ${url}`);
  return {
    url,
    port,
    baseDir,
    userDataDir: dirs.userData,
    extensionsDir: dirs.extensions,
    folder: dirs.folder,
    pid: child.pid!,
    workbenchUrl: `${url}/?folder=${encodeURIComponent(dirs.folder)}`,
    logTail: (lines = 40) => log.split('\n').slice(-lines).join('\n'),
    stop,
  };
}

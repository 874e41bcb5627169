// One onion address in front of several backend onion services, the way the Helm chart runs
// redemption (docs/deploy.md, "One onion address for many pods"), on the private Tor network:
// each backend is its own tor with its own key (derived by the chart's own
// helm/llmtor/files/onion-keys.mjs) and `HiddenServiceOnionbalanceInstance 1`; Onionbalance
// (PyPI, scripts/install-onionbalance.sh) with its own tor publishes the front's descriptor,
// made of the backends' introduction points.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePorts } from './ports.js';
import { TorControl } from './torControl.js';
import type { TorNetwork } from './torNetwork.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** The chart's key script: the test exercises the very code the pods run. */
export const ONION_KEYS_SCRIPT = path.join(REPO, 'helm/llmtor/files/onion-keys.mjs');
export const ONIONBALANCE_START = path.join(REPO, 'helm/llmtor/files/onionbalance-start.py');

export interface OnionFrontOptions {
  network: TorNetwork;
  /** Local HTTP ports on 127.0.0.1, one backend onion service each (virtual port 80). */
  backendPorts: number[];
  log?: (s: string) => void;
  /** onionbalance executable (default: installed by scripts/install-onionbalance.sh). */
  onionbalancePath?: string;
  torPath?: string;
}

export interface OnionFront {
  /** The public address (Onionbalance's frontend key). */
  readonly frontAddress: string;
  /** Backend onion addresses, in the order of backendPorts. */
  readonly backendAddresses: readonly string[];
  /** Resolves when Onionbalance has uploaded a front descriptor made from every backend's
   * introduction points to an HSDir (ms since start). An earlier one, made before every backend's
   * descriptor was fetched, would send clients (which cache it) to some backends only. */
  frontUploaded(timeoutMs: number): Promise<number>;
  logTail(name: string, lines?: number): string;
  stop(): Promise<void>;
}

interface Proc {
  child: ChildProcess;
  output: string;
  exited: Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;

export async function installOnionbalance(): Promise<string> {
  const { stdout } = await run('bash', [path.join(REPO, 'scripts/install-onionbalance.sh')], { timeout: 600_000 });
  return stdout.trim().split('\n').at(-1)!;
}

export async function startOnionFront(opts: OnionFrontOptions): Promise<OnionFront> {
  const log = opts.log ?? (() => undefined);
  const torPath = opts.torPath ?? 'tor';
  const ob = opts.onionbalancePath ?? (await installOnionbalance());
  const t0 = Date.now();
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'llmtor-onionfront-'));
  const procs = new Map<string, Proc>();
  const controls: TorControl[] = [];
  const spawnLogged = (name: string, cmd: string, args: string[]): Proc => {
    // Unbuffered: Onionbalance's log lines are read while it runs.
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    live.add(child);
    const p: Proc = {
      child,
      output: '',
      exited: new Promise((resolve) => child.once('exit', () => (live.delete(child), resolve()))),
    };
    const keep = (d: Buffer) => (p.output = (p.output + d.toString('utf8')).slice(-20_000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    procs.set(name, p);
    return p;
  };
  const stop = async () => {
    for (const c of controls) c.close();
    for (const p of procs.values()) p.child.kill('SIGTERM');
    await Promise.race([Promise.all([...procs.values()].map((p) => p.exited)), new Promise((r) => setTimeout(r, 3_000))]);
    for (const p of procs.values()) p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const keys = async (...args: string[]) => (await run(process.execPath, [ONION_KEYS_SCRIPT, ...args])).stdout.trim();
    const frontAddress = await keys('frontend', path.join(dir, 'front'));
    const seed = path.join(dir, 'seed');
    writeFileSync(seed, randomBytes(48), { mode: 0o600 });

    const ports = await freePorts(opts.backendPorts.length + 1);
    const torrcBase = (dataDir: string, controlPort: number) => [
      'TestingTorNetwork 1',
      `DataDirectory ${dataDir}`,
      'GeoIPFile ""',
      'GeoIPv6File ""',
      'SocksPort 0',
      `ControlPort 127.0.0.1:${controlPort}`,
      'CookieAuthentication 1',
      'ShutdownWaitLength 0',
      'ClientUseIPv6 0',
      `Log notice file ${path.join(dataDir, 'notice.log')}`,
      ...opts.network.dirAuthorityLines,
    ];
    const spawnTor = (name: string, lines: string[]) => {
      const torrc = path.join(dir, `${name}.torrc`);
      writeFileSync(torrc, lines.join('\n') + '\n');
      writeFileSync(path.join(dir, 'empty'), '');
      return spawnLogged(name, torPath, ['--defaults-torrc', path.join(dir, 'empty'), '-f', torrc]);
    };
    const backendAddresses: string[] = [];
    for (const [i, port] of opts.backendPorts.entries()) {
      const name = `backend-${i}`;
      const hs = path.join(dir, name, 'hs');
      // As the redemption pod's init container does: key from the seed and the "pod name", ob_config naming the front.
      await keys('backend', seed, name, hs, path.join(dir, 'front', 'hostname'));
      spawnTor(name, [
        ...torrcBase(path.join(dir, name, 'tor'), ports[i]!),
        `HiddenServiceDir ${hs}`,
        `HiddenServicePort 80 127.0.0.1:${port}`,
        'HiddenServiceOnionbalanceInstance 1',
      ]);
    }
    const configPath = path.join(dir, 'onionbalance', 'config.yaml');
    mkdirSync(path.dirname(configPath), { recursive: true });
    // As the Onionbalance pod's init container does: backend addresses from the same seed.
    for (const line of (await keys('config', seed, 'backend', String(opts.backendPorts.length), path.join(dir, 'front', 'hs_ed25519_secret_key'), configPath)).split('\n')) {
      backendAddresses.push(/(\S+\.onion)$/.exec(line)![1]!);
    }
    const obControl = ports.at(-1)!;
    const obData = path.join(dir, 'onionbalance', 'tor');
    spawnTor('onionbalance-tor', torrcBase(obData, obControl));

    // Watch the front's uploads on Onionbalance's tor (HS_DESC UPLOADED for the front address).
    const cookie = path.join(obData, 'control_auth_cookie');
    let ctl: TorControl | undefined;
    for (let tries = 0; !ctl && tries < 100; tries++) {
      try {
        ctl = await TorControl.connect(obControl, cookie, { timeoutMs: 1_000 });
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!ctl) throw new Error(`Onionbalance's tor did not open its control port:\n${procs.get('onionbalance-tor')!.output}`);
    controls.push(ctl);
    const uploads: number[] = [];
    const front = frontAddress.replace(/\.onion$/, '');
    const hsEvents: string[] = [];
    ctl.on('event', (e: { type: string; line: string }) => {
      if (e.type === 'HS_DESC') hsEvents.push(e.line);
      if (e.type === 'HS_DESC' && e.line.startsWith(`HS_DESC UPLOADED ${front} `)) uploads.push(Date.now() - t0);
    });
    await ctl.setEvents(['HS_DESC']);
    
    // Through the chart's starter (waits for tor's consensus), with the venv's python.
    const python = path.join(path.dirname(ob), 'python3');
    spawnLogged('onionbalance', python, [ONIONBALANCE_START, String(obControl), '-c', configPath, '-s', path.join(dir, 'no-socket'), '-v', 'info', '--is-testnet']);
    log(`onion front ${frontAddress}: backends ${backendAddresses.join(', ')} (${Date.now() - t0} ms)`);

    return {
      frontAddress,
      backendAddresses,
      async frontUploaded(timeoutMs: number) {
        const deadline = Date.now() + timeoutMs;
        const obProc = procs.get('onionbalance')!;
        let allSince: number | undefined;
        for (;;) {
          // Onionbalance logs "We got N intros from M instances" when it builds a descriptor.
          if (allSince === undefined && [...obProc.output.matchAll(/intros from (\d+) instances/g)].some((m) => Number(m[1]) >= opts.backendPorts.length)) allSince = Date.now() - t0;
          const done = allSince === undefined ? undefined : uploads.find((u) => u >= allSince!);
          if (done !== undefined) return done;
          if (obProc.child.exitCode !== null) throw new Error(`onionbalance exited (${obProc.child.exitCode}):\n${obProc.output.slice(-3_000)}`);
          if (Date.now() > deadline) throw new Error(`no upload of a front descriptor with every backend within ${timeoutMs} ms; HS_DESC events:\n${hsEvents.slice(-20).join('\n')}\nonionbalance says:\n${obProc.output.slice(-1_500)}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      },
      logTail(name: string, lines = 30) {
        const p = procs.get(name);
        let text = p?.output ?? '';
        try {
          text += readFileSync(path.join(dir, name === 'onionbalance-tor' ? 'onionbalance/tor' : `${name}/tor`, 'notice.log'), 'utf8');
        } catch {
          /* no log file */
        }
        return text.split('\n').slice(-lines).join('\n');
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

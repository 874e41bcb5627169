/**
 * A Secret volume without a kubelet: mirrors a Secret into a directory the way
 * the kubelet updates a mounted Secret (pkg/volume/util/atomic_writer.go), so a
 * process reading the directory (the proxy's key directory, its key-encryption
 * key file) sees exactly what it sees in a pod:
 *
 *   <dir>/..2026_11_25_14_03_07.1234567/<key>   the payload of one version
 *   <dir>/..data -> ..2026_11_25_14_03_07.1234567
 *   <dir>/<key>  -> ..data/<key>                 one top-level symlink per key
 *
 * An update writes a new timestamped directory, points `..data_tmp` at it and
 * renames that over `..data` (the atomic switch), then adds top-level symlinks
 * for new keys, removes those of deleted keys, and removes the old timestamped
 * directory — the kubelet's order, so a reader between two steps sees what it
 * would see on a node (e.g. a dangling symlink for a key just removed).
 *
 * The kubelet resyncs a pod's volumes periodically; here a poll on the Secret
 * (get, compare resourceVersion) drives the writes. `pause()` models a kubelet
 * that has not synced yet.
 */
import { lstat, mkdtemp, readFile, readdir, readlink, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { CoreV1Api } from '@kubernetes/client-node';

const DATA_DIR = '..data';
const DATA_TMP = '..data_tmp';

function timestampPrefix(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * One atomic update of `dir` to `payload` (file name → content), kubelet style.
 * Returns false (and touches nothing) when the current version already holds
 * exactly this payload.
 */
export async function writeAtomically(dir: string, payload: Record<string, Buffer>, mode = 0o644): Promise<boolean> {
  for (const name of Object.keys(payload)) {
    if (!/^[^/.][^/]*$/.test(name)) throw new Error(`secret mirror: key ${JSON.stringify(name)} is not a plain file name`);
  }
  let oldTs: string | undefined;
  try {
    oldTs = await readlink(join(dir, DATA_DIR));
  } catch {
    oldTs = undefined;
  }
  const oldNames = oldTs ? await readdir(join(dir, oldTs)) : [];
  if (oldTs) {
    const names = Object.keys(payload).sort();
    const old = [...oldNames].sort();
    if (names.length === old.length && names.every((n, i) => n === old[i])) {
      let same = true;
      for (const n of names) if (!(await readFile(join(dir, oldTs, n))).equals(payload[n]!)) same = false;
      if (same) return false;
    }
  }
  // (5)-(6) new timestamped directory with the whole payload
  const tsDir = await mkdtemp(join(dir, timestampPrefix(new Date())));
  for (const [name, content] of Object.entries(payload)) await writeFile(join(tsDir, name), content, { mode });
  // (8)-(9) ..data_tmp -> new dir, renamed over ..data: the switch readers see at once
  const tmp = join(dir, DATA_TMP);
  await rm(tmp, { force: true });
  await symlink(basename(tsDir), tmp);
  await rename(tmp, join(dir, DATA_DIR));
  // (10) top-level symlinks for keys that did not exist
  for (const name of Object.keys(payload)) if (!(await exists(join(dir, name)))) await symlink(join(DATA_DIR, name), join(dir, name));
  // (11) top-level symlinks of keys that are gone
  for (const name of oldNames) if (!(name in payload)) await unlink(join(dir, name)).catch(() => undefined);
  // (12) the old version
  if (oldTs) await rm(join(dir, oldTs), { recursive: true, force: true });
  return true;
}

export interface SecretMirror {
  readonly dir: string;
  /** Atomic updates written so far (the first one included). */
  readonly writes: number;
  /** resourceVersion of the Secret the directory shows. */
  readonly resourceVersion: string | undefined;
  /** One sync now (waits for a running one); true if the directory changed. */
  sync(): Promise<boolean>;
  /** Stop syncing (a kubelet that has not caught up); resolves once a sync in flight is done. The directory keeps its version. */
  pause(): Promise<void>;
  resume(): void;
  stop(): Promise<void>;
}

export interface SecretMirrorOptions {
  core: CoreV1Api;
  namespace: string;
  name: string;
  dir: string;
  /** Poll interval; the kubelet's is about a minute, tests want it short. */
  intervalMs?: number;
  /** Project only these keys (Secret key → file name), like a volume's `items`. */
  items?: Record<string, string>;
  mode?: number;
  /** How long the first sync waits for the Secret to exist. */
  firstSyncTimeoutMs?: number;
}

/** Starts mirroring; resolves once the Secret exists and its first version is in `dir`. */
export async function mirrorSecret(o: SecretMirrorOptions): Promise<SecretMirror> {
  let writes = 0;
  let rv: string | undefined;
  let paused = false;
  let stopped = false;
  let running: Promise<boolean> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const syncOnce = async (): Promise<boolean> => {
    let secret;
    try {
      secret = await o.core.readNamespacedSecret({ namespace: o.namespace, name: o.name });
    } catch {
      return false; // missing or API hiccup: the volume keeps what it has, as on a node
    }
    const version = secret.metadata?.resourceVersion;
    if (version !== undefined && version === rv) return false;
    const payload: Record<string, Buffer> = {};
    for (const [key, b64] of Object.entries(secret.data ?? {})) {
      const file = o.items ? o.items[key] : key;
      if (file !== undefined) payload[file] = Buffer.from(b64, 'base64');
    }
    const changed = await writeAtomically(o.dir, payload, o.mode);
    rv = version;
    if (changed) writes++;
    return changed;
  };
  const sync = (): Promise<boolean> => {
    running ??= syncOnce().finally(() => {
      running = undefined;
    });
    return running;
  };
  const tick = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void (paused ? Promise.resolve(false) : sync()).catch(() => false).then(tick);
    }, o.intervalMs ?? 250);
  };

  const deadline = Date.now() + (o.firstSyncTimeoutMs ?? 30_000);
  while (rv === undefined) {
    await sync();
    if (rv !== undefined) break;
    if (Date.now() > deadline) throw new Error(`secret mirror: Secret ${o.namespace}/${o.name} did not appear`);
    await new Promise((r) => setTimeout(r, 100));
  }
  tick();

  return {
    dir: o.dir,
    get writes() {
      return writes;
    },
    get resourceVersion() {
      return rv;
    },
    sync,
    async pause() {
      paused = true;
      await running;
    },
    resume() {
      paused = false;
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

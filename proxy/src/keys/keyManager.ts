/**
 * Holds the live Keyring and keeps every signer in step with it. On a change
 * the new private keys are handed to the listeners (the issuance module's
 * SignerPool) and awaited *before* the new Keyring is published, so a key that
 * requests can select is always one the pool can sign with. Reloads on file
 * change (fs.watch, debounced) and on a poll timer (mounted Secrets update by
 * symlink swaps that watchers can miss); a failed reload keeps the old keys.
 */
import { watch, type FSWatcher } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { Keyring } from '@llmtor/protocol';
import type { Logger } from 'pino';
import type { KeyFileProblem, KeySource } from './keySource.js';

export type SigningKeysListener = (keys: Map<string, KeyObject>) => Promise<void>;

export class KeyManager {
  private current = new Keyring();
  private fingerprint = '';
  private readonly listeners: SigningKeysListener[] = [];
  private lastPrivate = new Map<string, KeyObject>();
  private lastProblems: KeyFileProblem[] = [];
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private loadedOnce = false;
  private closed = false;

  constructor(
    private readonly source: KeySource,
    private readonly logger: Logger,
    private readonly opts: { pollIntervalMs?: number; now: () => number },
  ) {}

  keyring(): Keyring {
    return this.current;
  }

  /** Files of the last load that were skipped; `key` is set for keys whose private key did not open. */
  problems(): readonly KeyFileProblem[] {
    return this.lastProblems;
  }

  /**
   * Keys that can still sign (issuance window not over) but whose private key did
   * not open: an issuance pod with one of these is not ready (/readyz names them).
   */
  unopenedSigningKeys(): KeyFileProblem[] {
    const now = this.opts.now();
    return this.lastProblems.filter((p) => p.key !== undefined && now < Date.parse(p.key.issuanceEnd));
  }

  /** True once a load has succeeded (readiness). */
  get loaded(): boolean {
    return this.loadedOnce;
  }

  /** Registers a signer to keep in sync; it gets the current keys at once. */
  async onSigningKeys(listener: SigningKeysListener): Promise<void> {
    this.listeners.push(listener);
    if (this.loadedOnce) await listener(this.lastPrivate);
  }

  async start(): Promise<void> {
    await this.reload();
    if (this.source.watchPath) {
      try {
        this.watcher = watch(this.source.watchPath, () => this.scheduleReload());
        this.watcher.on('error', (e) => this.logger.warn({ err: e.message }, 'key directory watch failed; relying on polling'));
      } catch (e) {
        this.logger.warn({ err: (e as Error).message }, 'cannot watch the key directory; relying on polling');
      }
      if (this.opts.pollIntervalMs) {
        this.timer = setInterval(() => this.scheduleReload(0), this.opts.pollIntervalMs);
        this.timer.unref();
      }
    }
  }

  private scheduleReload(delayMs = 100): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.reload(), delayMs);
    this.debounce.unref();
  }

  /** Loads the source and applies changes. Concurrent calls coalesce into one more run. */
  async reload(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.reloadOnce();
      } while (this.again && !this.closed);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async reloadOnce(): Promise<void> {
    let loaded;
    try {
      loaded = await this.source.load();
    } catch (e) {
      this.logger.error({ err: (e as Error).message, source: this.source.description }, 'loading keys failed; keeping the previous keys');
      return;
    }
    for (const p of loaded.problems) this.logger.error({ file: p.file, problem: p.message }, 'key file skipped');
    this.lastProblems = loaded.problems;
    const fp = loaded.entries
      .map((e) => `${JSON.stringify(e.meta)}:${loaded.privateKeys.has(e.meta.keyId) ? 1 : 0}`)
      .sort()
      .join('|');
    if (this.loadedOnce && fp === this.fingerprint) return;
    const before = new Set(this.current.all().map((e) => e.meta.keyId));
    try {
      for (const l of this.listeners) await l(loaded.privateKeys);
    } catch (e) {
      this.logger.error({ err: (e as Error).message }, 'signers rejected the new keys; keeping the previous keys');
      return;
    }
    const next = new Keyring(loaded.entries);
    this.current = next;
    this.lastPrivate = loaded.privateKeys;
    this.fingerprint = fp;
    this.loadedOnce = true;
    const after = new Set(next.all().map((e) => e.meta.keyId));
    const added = [...after].filter((k) => !before.has(k));
    const removed = [...before].filter((k) => !after.has(k));
    this.logger.info(
      { source: this.source.description, keys: next.all().map((e) => ({ keyId: e.meta.keyId.slice(0, 16), purpose: e.meta.purpose, epoch: e.meta.epoch })), added: added.length, removed: removed.length },
      'keys loaded',
    );
    const collisions = next.truncatedCollisions(this.opts.now());
    if (collisions.length > 0) this.logger.error({ truncatedIds: collisions }, 'two published keys share a truncated key id (RFC 9578 forbids it): issuance under them is ambiguous');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    await this.running;
  }
}

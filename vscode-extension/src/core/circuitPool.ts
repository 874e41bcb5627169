/**
 * A small pool of pre-built, single-use Tor connections to one origin, so that a request
 * does not wait for its circuit (for an onion: the rendezvous circuit, the expensive part).
 *
 * Isolation stays per request: every pooled connection is opened with fresh SOCKS
 * credentials (its own circuit), is handed out at most once, and is closed after that one
 * request. Timing must not tell the server anything (docs/privacy.md, "Pre-built circuits"):
 * connections are opened on a random schedule of the pool's own (exponential gaps), never
 * because of a request or a keystroke, and a full pool rotates (the oldest is closed) rather
 * than pausing, so when a connection opens does not depend on whether the last one was
 * used. A connection older than `maxAgeMs` is closed, not used (the server times idle
 * connections out; proxy/src/server.ts waits 66 s for headers). An empty pool means a fresh
 * circuit at send time, as before.
 */
import type { Socket } from 'node:net';
import { freshCredentials, type SocksCredentials } from './torTransport.js';

export interface PooledConnection {
  /** Connected through SOCKS to the origin (TLS already set up for https). */
  readonly socket: Socket;
  readonly credentials: SocksCredentials;
  readonly openedAt: number;
}

/** Opens one connection to the origin through Tor with these credentials. */
export type ConnectionOpener = (creds: SocksCredentials) => Promise<Socket>;

export interface CircuitPoolOptions {
  /** Connections kept ready (default 2). */
  size?: number;
  /** A pooled connection older than this is closed instead of used (default 45 s). */
  maxAgeMs?: number;
  /** Mean gap between openings (exponential, bounded to [0.2, 3] × the mean; default 20 s). */
  meanIntervalMs?: number;
  /** Stop opening connections after this long without a request (default 10 min). */
  idleStopMs?: number;
  /** Called with each connection handed out (tests, diagnostics). */
  onTake?: (conn: PooledConnection) => void;
  /** For tests: randomness in [0, 1), the clock, timers. */
  random?: () => number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

export interface CircuitPoolStats {
  opened: number;
  used: number;
  /** Closed unused: rotated out, too old, or failed. */
  discarded: number;
  failed: number;
  /** Requests that found the pool empty (a fresh circuit at send time). */
  misses: number;
}

interface Entry {
  conn: PooledConnection;
  expiry: unknown;
}

export class CircuitPool {
  readonly stats: CircuitPoolStats = { opened: 0, used: 0, discarded: 0, failed: 0, misses: 0 };
  private readonly ready: Entry[] = [];
  private readonly opening = new Set<Promise<void>>();
  private tick: unknown;
  private lastUse = 0;
  private closed = false;
  /** Every username this pool ever used: a reuse would be a bug (tests read it). */
  private readonly usernames = new Set<string>();
  private readonly size: number;
  private readonly maxAgeMs: number;
  private readonly meanIntervalMs: number;
  private readonly idleStopMs: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;
  private readonly onTake: ((conn: PooledConnection) => void) | undefined;

  constructor(
    private readonly open: ConnectionOpener,
    opts: CircuitPoolOptions = {},
  ) {
    this.size = Math.max(1, opts.size ?? 2);
    this.maxAgeMs = opts.maxAgeMs ?? 45_000;
    this.meanIntervalMs = opts.meanIntervalMs ?? 20_000;
    this.idleStopMs = opts.idleStopMs ?? 10 * 60_000;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.setTimer =
      opts.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return t;
      });
    this.clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
    this.onTake = opts.onTake;
  }

  /** Connections ready now. */
  get readyCount(): number {
    return this.ready.length;
  }

  /**
   * Note that the origin is in use, so the pool keeps (or starts) opening connections on its
   * own schedule for `idleStopMs`. Called for every request; it never opens anything itself.
   */
  touch(): void {
    if (this.closed) return;
    this.lastUse = this.now();
    if (this.tick === undefined) this.scheduleTick();
  }

  /** A ready connection, removed from the pool (never handed out twice), or undefined. */
  take(): PooledConnection | undefined {
    this.touch();
    for (;;) {
      const e = this.ready.shift();
      if (!e) {
        this.stats.misses++;
        return undefined;
      }
      this.clearTimer(e.expiry);
      const s = e.conn.socket;
      if (this.now() - e.conn.openedAt > this.maxAgeMs || s.destroyed || !s.writable || s.readableEnded) {
        this.discard(e.conn);
        continue;
      }
      s.removeListener('close', this.onPooledClose);
      s.ref();
      this.stats.used++;
      this.onTake?.(e.conn);
      return e.conn;
    }
  }

  /** Stops the schedule and closes every ready connection. */
  close(): void {
    this.closed = true;
    if (this.tick !== undefined) this.clearTimer(this.tick);
    this.tick = undefined;
    for (const e of this.ready.splice(0)) {
      this.clearTimer(e.expiry);
      this.discard(e.conn);
    }
  }

  /** Waits for the openings in flight (tests, benchmarks). */
  async settle(): Promise<void> {
    while (this.opening.size > 0) await Promise.allSettled([...this.opening]);
  }

  /** Whether this pool ever used these SOCKS credentials (tests). */
  hasUsedUsername(username: string): boolean {
    return this.usernames.has(username);
  }

  private scheduleTick(): void {
    // Exponential gaps (a Poisson process) are memoryless: the time since the last opening
    // says nothing about the next. Bounded so that the pool neither stalls nor bursts.
    const mean = this.meanIntervalMs;
    const gap = Math.min(3 * mean, Math.max(0.2 * mean, -Math.log(1 - this.random()) * mean));
    this.tick = this.setTimer(() => this.onTick(), gap);
  }

  private onTick(): void {
    this.tick = undefined;
    if (this.closed) return;
    if (this.now() - this.lastUse > this.idleStopMs) return; // idle: stop until the next request
    this.openOne();
    this.scheduleTick();
  }

  private openOne(): void {
    const creds = freshCredentials();
    if (this.usernames.has(creds.username)) throw new Error('circuit pool: SOCKS credentials repeated');
    this.usernames.add(creds.username);
    const p = this.open(creds).then(
      (socket) => {
        this.stats.opened++;
        if (this.closed) {
          socket.destroy();
          this.stats.discarded++;
          return;
        }
        const conn: PooledConnection = { socket, credentials: creds, openedAt: this.now() };
        socket.on('error', () => undefined);
        socket.once('close', this.onPooledClose);
        // A waiting connection must not keep the process alive (nor, through it, the schedule).
        socket.unref();
        const expiry = this.setTimer(() => this.drop(conn), this.maxAgeMs);
        this.ready.push({ conn, expiry });
        // Full: rotate out the oldest, so openings keep their own schedule.
        while (this.ready.length > this.size) {
          const old = this.ready.shift()!;
          this.clearTimer(old.expiry);
          this.discard(old.conn);
        }
      },
      () => {
        this.stats.failed++;
      },
    );
    this.opening.add(p);
    void p.finally(() => this.opening.delete(p));
  }

  /** A pooled socket closed by the other side (or by tor): forget it. */
  private readonly onPooledClose = (): void => {
    for (let i = this.ready.length - 1; i >= 0; i--) {
      const e = this.ready[i]!;
      if (e.conn.socket.destroyed) {
        this.ready.splice(i, 1);
        this.clearTimer(e.expiry);
        this.stats.discarded++;
      }
    }
  };

  private drop(conn: PooledConnection): void {
    const i = this.ready.findIndex((e) => e.conn === conn);
    if (i < 0) return;
    this.ready.splice(i, 1);
    this.discard(conn);
  }

  private discard(conn: PooledConnection): void {
    conn.socket.removeListener('close', this.onPooledClose);
    conn.socket.destroy();
    this.stats.discarded++;
  }
}

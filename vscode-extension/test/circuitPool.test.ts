/**
 * The circuit pool (src/core/circuitPool.ts) with real sockets: a SOCKS5 server on loopback
 * (test/helpers/socksServer.ts) relays a made-up onion name to a local HTTP server. The
 * pool's clock and timers are driven by the test, so its schedule is checked exactly.
 * Over real tor: torIntegration.test.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { CircuitPool, type CircuitPoolOptions, type PooledConnection } from '../src/core/circuitPool.js';
import { openTorConnection, readAll, type SocksCredentials } from '../src/core/torTransport.js';
import { torTransport } from '../src/core/transport.js';
import { startSocksServer, type TestSocksServer } from './helpers/socksServer.js';

const ONION = 'pooltestxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion';

/** Timers the test advances by hand. */
class ManualClock {
  t = 1_000_000;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private seq = 0;
  now = () => this.t;
  setTimer = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimer = (id: unknown): void => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };
  /** Runs every timer due within `ms`, in time order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

/** A deterministic stream of numbers in [0, 1). */
function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

describe('circuit pool (pre-built single-use Tor connections)', () => {
  let socks: TestSocksServer;
  let target: http.Server;
  let targetPort = 0;
  const requests: string[] = [];
  let connections = 0;

  beforeEach(async () => {
    requests.length = 0;
    connections = 0;
    target = http.createServer((req, res) => {
      requests.push(req.url ?? '');
      res.end(`hello ${req.url}`);
    });
    target.on('connection', () => connections++);
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', () => r()));
    targetPort = (target.address() as net.AddressInfo).port;
    socks = await startSocksServer({ relay: (host, port) => (host === ONION ? { host: '127.0.0.1', port: targetPort } : host === '127.0.0.1' ? { host, port } : undefined) });
  });
  afterEach(async () => {
    await socks.close();
    target.closeAllConnections();
    await new Promise<void>((r) => target.close(() => r()));
  });

  function pool(clock: ManualClock, opts: CircuitPoolOptions = {}, opened: SocksCredentials[] = []): CircuitPool {
    const url = new URL(`http://${ONION}/`);
    return new CircuitPool(
      (creds) => {
        opened.push(creds);
        return openTorConnection({ host: '127.0.0.1', port: socks.port }, creds, url);
      },
      { size: 2, maxAgeMs: 45_000, meanIntervalMs: 10_000, random: seeded(7), now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer, ...opts },
    );
  }

  /** Advance until `n` connections are ready (bounded). */
  async function fill(p: CircuitPool, clock: ManualClock, n: number): Promise<void> {
    p.touch();
    for (let i = 0; i < 200 && p.readyCount < n; i++) {
      clock.advance(5_000);
      await p.settle();
    }
    assert.equal(p.readyCount, n);
  }

  it('hands each connection out once, with SOCKS credentials never used before, and is empty until its schedule opens one', async () => {
    const clock = new ManualClock();
    const opened: SocksCredentials[] = [];
    const p = pool(clock, {}, opened);
    try {
      assert.equal(p.take(), undefined, 'an empty pool: the caller builds a fresh circuit');
      assert.equal(p.stats.misses, 1);
      assert.equal(opened.length, 0, 'a request never opens a pooled connection itself');
      await fill(p, clock, 2);
      const taken: PooledConnection[] = [];
      for (let round = 0; round < 4; round++) {
        await fill(p, clock, 2);
        taken.push(p.take()!, p.take()!);
      }
      const sockets = new Set(taken.map((c) => c.socket));
      assert.equal(sockets.size, taken.length, 'no connection was handed out twice');
      const users = opened.map((c) => c.username);
      assert.equal(new Set(users).size, users.length, 'every opening had fresh credentials');
      assert.equal(new Set(opened.map((c) => c.password)).size, opened.length);
      // What the SOCKS server saw: one CONNECT per opening, each with its own username.
      const seen = socks.records.filter((r) => r.host === ONION).map((r) => r.username);
      assert.deepEqual(seen.sort(), [...users].sort());
      for (const c of taken) assert.ok(p.hasUsedUsername(c.credentials.username));
    } finally {
      p.close();
    }
  });

  it('drops a connection older than maxAgeMs instead of using it', async () => {
    const clock = new ManualClock();
    // A long mean gap: no opening replaces the old ones while the clock runs past maxAge.
    const p = pool(clock, { meanIntervalMs: 200_000, maxAgeMs: 45_000, size: 1 });
    try {
      await fill(p, clock, 1);
      const sock = (p as unknown as { ready: Array<{ conn: PooledConnection }> }).ready[0]!.conn.socket;
      clock.advance(45_001);
      assert.equal(p.readyCount, 0, 'the expiry timer closed it');
      assert.ok(sock.destroyed, 'and its socket');
      assert.equal(p.take(), undefined);
      assert.ok(p.stats.discarded >= 1);
    } finally {
      p.close();
    }
  });

  it('forgets a pooled connection the server closed', async () => {
    const clock = new ManualClock();
    const p = pool(clock, { size: 1, meanIntervalMs: 200_000 });
    try {
      await fill(p, clock, 1);
      target.closeAllConnections();
      for (let i = 0; i < 100 && p.readyCount > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(p.readyCount, 0);
      assert.equal(p.take(), undefined);
    } finally {
      p.close();
    }
  });

  it('opens connections on its own random schedule, whether or not they are used (a full pool rotates)', async () => {
    const times = async (use: boolean): Promise<number[]> => {
      const clock = new ManualClock();
      const at: number[] = [];
      const url = new URL(`http://${ONION}/`);
      const p = new CircuitPool(
        (creds) => {
          at.push(clock.t);
          return openTorConnection({ host: '127.0.0.1', port: socks.port }, creds, url);
        },
        { size: 2, meanIntervalMs: 10_000, random: seeded(42), now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer },
      );
      try {
        p.touch();
        for (let i = 0; i < 30; i++) {
          clock.advance(3_000);
          await p.settle();
          if (use && i % 4 === 0) p.take()?.socket.destroy();
          assert.ok(p.readyCount <= 2, 'never more than `size` ready');
        }
      } finally {
        p.close();
      }
      return at;
    };
    const idle = await times(false);
    const used = await times(true);
    assert.ok(idle.length >= 4, `openings happened (${idle.length})`);
    assert.deepEqual(used, idle, 'using connections does not move any opening');
    const gaps = idle.slice(1).map((t, i) => t - idle[i]!);
    assert.ok(gaps.every((g) => g >= 2_000 && g <= 30_000), `gaps bounded to [0.2, 3] × mean: ${gaps.join(', ')}`);
    assert.ok(new Set(gaps).size > 1, 'gaps vary');
  });

  it('stops opening after idleStopMs without a request, and starts again with the next one', async () => {
    const clock = new ManualClock();
    const opened: SocksCredentials[] = [];
    const p = pool(clock, { idleStopMs: 60_000, meanIntervalMs: 10_000 }, opened);
    try {
      p.touch();
      clock.advance(120_000);
      await p.settle();
      const n = opened.length;
      assert.ok(n > 0);
      clock.advance(600_000);
      await p.settle();
      assert.equal(opened.length, n, 'nothing opened while idle');
      p.take();
      clock.advance(40_000);
      await p.settle();
      assert.ok(opened.length > n, 'a request restarts the schedule');
    } finally {
      p.close();
    }
  });

  it('torTransport: a request takes a pooled connection when one is ready, else a fresh circuit; each serves one request', async () => {
    const taken: PooledConnection[] = [];
    const tor = torTransport({ host: '127.0.0.1', port: socks.port }, { pool: { size: 2, meanIntervalMs: 30, onTake: (c) => taken.push(c) } });
    try {
      const url = `http://${ONION}/`;
      // Empty pool: the first request goes on a fresh circuit (and starts the pool's schedule).
      const first = await tor.request(`${url}first`, { prebuilt: true });
      assert.equal((await readAll(first.body)).toString(), 'hello /first');
      assert.equal(taken.length, 0);
      const p = tor.poolFor!(url)!;
      for (let i = 0; i < 200 && p.readyCount < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(p.readyCount, 2);
      const before = socks.records.length;
      const second = await tor.request(`${url}second`, { prebuilt: true });
      assert.equal((await readAll(second.body)).toString(), 'hello /second');
      assert.equal(taken.length, 1, 'the pooled connection was used');
      assert.equal(socks.records.length - before <= 1, true, 'the request itself opened no SOCKS connection (only the schedule may have)');
      // Single use: Node sent `Connection: close`, the socket is gone after the answer.
      for (let i = 0; i < 100 && !taken[0]!.socket.destroyed; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(taken[0]!.socket.destroyed, 'the pooled socket closed after its one request');
      assert.deepEqual(requests, ['/first', '/second']);
    } finally {
      tor.close!();
    }
  });

  it('torTransport: requests without `prebuilt` (identity calls) never touch a pool', async () => {
    const tor = torTransport({ host: '127.0.0.1', port: socks.port }, { pool: { meanIntervalMs: 10 } });
    try {
      for (let i = 0; i < 3; i++) await readAll((await tor.request(`http://${ONION}/identity`, { headers: { authorization: 'Bearer x' } })).body);
      assert.equal(tor.poolFor!(`http://${ONION}/`), undefined, 'no pool was created, so no schedule runs');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(socks.records.length, 3, 'only the three requests reached the SOCKS port');
    } finally {
      tor.close!();
    }
  });

  it('torTransport: clearnet origins and pool:false are never pooled', async () => {
    const off = torTransport({ host: '127.0.0.1', port: socks.port }, { pool: false });
    const onion = torTransport({ host: '127.0.0.1', port: socks.port });
    try {
      await readAll((await off.request(`http://${ONION}/a`, { prebuilt: true })).body);
      assert.equal(off.poolFor!(`http://${ONION}/`), undefined);
      await readAll((await onion.request(`http://127.0.0.1:${targetPort}/b`, { prebuilt: true })).body);
      assert.equal(onion.poolFor!(`http://127.0.0.1:${targetPort}/`), undefined, 'an exit target is not pooled by default');
    } finally {
      off.close!();
      onion.close!();
    }
  });
});

/**
 * The extension's client code (no UI) against the real proxy (in-process local stack)
 * through a real private Tor network on loopback: account → admin grant → issuance (with
 * the key-consistency check over Tor) → redemption via the exit and via an onion service.
 * The harness proves who the proxy's TCP peer was: the exit's or the onion service's tor,
 * never the client. With the SOCKS port closed, redemption fails and nothing reaches the
 * proxy directly.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '@llmtor/devtools';
import { startTorNetwork, type PeerOwner, type TorNetwork } from '@llmtor/devtools/torNetwork';
import type * as LocalStackModule from '@llmtor/proxy/testing';
import type { LocalStack } from '@llmtor/proxy/testing';
import { LlmTorClient } from '../src/core/llmtorClient.js';
import { startOrJoin, watchShared } from '../src/core/sharedTor.js';
import { TorSupervisor } from '../src/core/torSupervisor.js';
import { TorTransportError } from '../src/core/torTransport.js';
import { clearnetTransport, torTransport } from '../src/core/transport.js';
import { MemorySecretStore, Wallet } from '../src/core/wallet.js';

// The proxy package is ESM; this test file is CommonJS (like the extension).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { startLocalStack } = require('@llmtor/proxy/testing') as typeof LocalStackModule;

describe('client over a real Tor network to the real proxy', function () {
  this.timeout(180_000);
  let stack: LocalStack;
  let net: TorNetwork;
  let onion: string;
  /** Who owned the other end of each TCP connection the proxy accepted. */
  const peers: (PeerOwner | undefined)[] = [];

  before(async () => {
    stack = await startLocalStack();
    stack.proxy.server.server.on('connection', (s: Socket) => {
      // Read /proc/net/tcp while the connection exists: whose socket is the peer?
      peers.push(net?.ownerOfPeerPort(s.remotePort ?? 0, stack.proxy.port));
    });
    net = await startTorNetwork({ onionTargetPort: stack.proxy.port });
    onion = net.onionAddress!;
  });

  after(async () => {
    await net?.stop();
    await stack?.stop();
  });

  function client(redemptionUrl: string, socks = () => ({ host: '127.0.0.1', port: net.socksPort }), secrets = new MemorySecretStore(), tor = torTransport(socks)) {
    return new LlmTorClient({
      issuerUrl: stack.url,
      redemptionUrl,
      issuance: clearnetTransport(),
      tor,
      wallet: new Wallet(secrets, { minAgeMs: 0, jitterMs: 0 }),
      secrets,
      batchSize: 4,
    });
  }

  /** What the refill schedule does at two unrelated random times: pin the directory over Tor, later get tokens. */
  async function refill(c: LlmTorClient) {
    await c.refreshDirectory();
    return c.refill();
  }

  async function grant(c: LlmTorClient, credits: number): Promise<void> {
    const res = await fetch(`${stack.url}/v1/admin/grants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ account_key: await c.accountKey(), credits }),
    });
    assert.equal(res.status, 201, await res.text());
  }

  async function chatAndTrace(c: LlmTorClient, target: string | RegExp) {
    const before = peers.length;
    const models = await c.models(true);
    const deltas: string[] = [];
    const { result, circuit } = await net.traceStream(
      () => c.send(models[0]!.id, [{ role: 'user', content: 'Say hello over Tor.' }], { onDelta: (d) => deltas.push(d) }),
      { target, timeoutMs: 60_000 },
    );
    return { result, circuit, deltas, newPeers: peers.slice(before) };
  }

  it('gets tokens (key checked over Tor) and redeems them through the exit; the proxy sees the exit, not the client', async () => {
    const c = client(`http://127.0.0.1:${stack.proxy.port}`);
    await c.createAccount();
    await grant(c, 10);
    const r = await refill(c);
    assert.equal(r.issued, 4);
    const held = await c.wallet.abuseTokens();
    assert.ok(held.permanent && held.transient, 'both abuse tokens obtained');
    assert.equal((await c.account()).balance, 6, '4 credits became tokens');

    const { result, circuit, deltas, newPeers } = await chatAndTrace(c, `127.0.0.1:${stack.proxy.port}`);
    assert.ok(result.content.length > 0, 'an answer came back');
    assert.ok(deltas.length > 1, `the answer was streamed in pieces (got ${deltas.length})`);
    assert.equal(result.content, deltas.join(''));
    assert.equal(result.credits, 1);
    assert.equal(circuit.hops.at(-1)?.role, 'exit', 'the stream left Tor at our exit');
    assert.ok(newPeers.length > 0);
    for (const p of newPeers) assert.equal(p?.role, 'exit', `every connection to the proxy came from the exit's tor (got ${JSON.stringify(p)})`);
    assert.equal((await c.wallet.counts()).total, 3);
  });

  it('redeems via the onion address; the proxy sees the onion service, not the client', async () => {
    const c = client(`http://${onion}`);
    await c.createAccount();
    await grant(c, 5);
    await refill(c);
    const { result, circuit, newPeers } = await chatAndTrace(c, /\.onion:80$/);
    assert.ok(result.content.length > 0);
    assert.equal(circuit.target, `${onion}:80`);
    assert.ok(newPeers.length > 0);
    for (const p of newPeers) assert.equal(p?.role, 'onionService', `every connection came from the onion service's tor (got ${JSON.stringify(p)})`);
  });

  it('uses its own circuit and SOCKS credentials for each redemption', async () => {
    const c = client(`http://127.0.0.1:${stack.proxy.port}`);
    await c.createAccount();
    await grant(c, 6);
    await refill(c);
    const watcher = await net.watchStreams();
    try {
      const model = (await c.models(true))[0]!.id;
      await c.send(model, [{ role: 'user', content: 'one' }]);
      await c.send(model, [{ role: 'user', content: 'two' }]);
      const streams = watcher.seen.filter((s) => s.target === `127.0.0.1:${stack.proxy.port}`);
      const creds = new Set(streams.map((s) => s.socksUsername));
      assert.equal(creds.size, streams.length, 'every stream had its own SOCKS credentials');
      const circuits = new Set(streams.map((s) => s.circuitId));
      assert.equal(circuits.size, streams.length, 'every stream had its own circuit');
    } finally {
      watcher.close();
    }
  });

  it('redeems on pre-built circuits from the pool: each with fresh credentials, used once, on a circuit of its own', async () => {
    const taken: string[] = [];
    const tor = torTransport(() => ({ host: '127.0.0.1', port: net.socksPort }), {
      pool: { size: 2, meanIntervalMs: 400, onTake: (conn) => taken.push(conn.credentials.username) },
    });
    const c = client(`http://${onion}`, undefined, new MemorySecretStore(), tor);
    const watcher = await net.watchStreams();
    try {
      await c.createAccount();
      await grant(c, 4);
      await refill(c);
      const model = (await c.models(true))[0]!.id; // the first onion request: starts the pool's schedule
      const pool = tor.poolFor!(`http://${onion}/`)!;
      const ready = async () => {
        for (let i = 0; i < 300 && pool.readyCount < 2; i++) await new Promise((r) => setTimeout(r, 100));
        assert.equal(pool.readyCount, 2, `pool filled (stats ${JSON.stringify(pool.stats)})`);
      };
      await ready();
      const t0 = Date.now();
      assert.ok((await c.send(model, [{ role: 'user', content: 'pooled one' }])).content.length > 0);
      const firstMs = Date.now() - t0;
      await ready();
      assert.ok((await c.send(model, [{ role: 'user', content: 'pooled two' }])).content.length > 0);
      assert.ok(taken.length >= 2, `pooled connections were used (${taken.length})`);
      assert.equal(new Set(taken).size, taken.length, 'no pooled connection was used twice');
      const streams = watcher.seen.filter((s) => s.target === `${onion}:80`);
      const users = streams.map((s) => s.socksUsername);
      assert.equal(new Set(users).size, users.length, 'every stream to the onion had its own SOCKS credentials');
      const usedStreams = streams.filter((s) => taken.includes(s.socksUsername ?? ''));
      assert.equal(usedStreams.length, taken.length, 'each used connection was one stream opened by the pool');
      assert.equal(new Set(usedStreams.map((s) => s.circuitId)).size, usedStreams.length, 'each on its own circuit');
      for (const s of usedStreams) assert.equal(s.purpose, 'HS_CLIENT_REND');
      console.log(`      pooled send ${firstMs} ms; pool ${JSON.stringify(pool.stats)}`);
    } finally {
      watcher.close();
      tor.close!();
    }
  });

  it('revokes the transient abuse token over Tor and carries on with a new one', async () => {
    const c = client(`http://${onion}`);
    await c.createAccount();
    await grant(c, 3);
    await refill(c);
    const old = (await c.wallet.abuseTokens()).transient!;
    await c.revokeTransient();
    assert.equal((await c.wallet.abuseTokens()).transient, undefined, 'no new token right after the revocation');
    // A later scheduled refill gets the new one (refillPlan.ts keeps the gap).
    await c.issueAbuse(['transient']);
    const fresh = (await c.wallet.abuseTokens()).transient!;
    assert.notEqual(fresh.token, old.token);
    const model = (await c.models(true))[0]!.id;
    assert.ok((await c.send(model, [{ role: 'user', content: 'after revocation' }])).content.length > 0);
    // The revoked token is blocked at the proxy; the credit tokens of that attempt are not spent.
    await c.wallet.setAbuseToken(old);
    const before = (await c.wallet.counts()).total;
    await assert.rejects(c.send(model, [{ role: 'user', content: 'with the revoked token' }]), (e: unknown) => (e as { code?: string }).code === 'pseudonym_blocked');
    assert.equal((await c.wallet.counts()).total, before, 'nothing was spent');
  });

  it('fails instead of going direct when the Tor SOCKS port is closed, and keeps the tokens', async () => {
    const closed = await freePort();
    const secrets = new MemorySecretStore();
    const good = client(`http://127.0.0.1:${stack.proxy.port}`, undefined, secrets);
    await good.createAccount();
    await grant(good, 3);
    await refill(good);
    const model = (await good.models(true))[0]!.id;
    const count = (await good.wallet.counts()).total;
    // Same account and wallet, but Tor is gone.
    const cut = client(`http://127.0.0.1:${stack.proxy.port}`, () => ({ host: '127.0.0.1', port: closed }), secrets);
    const before = peers.length;
    await assert.rejects(cut.send(model, [{ role: 'user', content: 'must not leak' }]), (e: unknown) => e instanceof TorTransportError && e.code === 'tor_unreachable');
    assert.equal(peers.length, before, 'the proxy saw no connection at all');
    assert.equal((await cut.wallet.counts()).total, count, 'the tokens never left: they are back in the wallet');
  });

  it('runs its own supervised tor, reports bootstrap progress, and redeems through it', async () => {
    // A tor the extension starts itself, configured as a client of the private network.
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'llmtor-supervised-'));
    const clientTorrc = readFileSync(path.join(net.dataDirs.client, 'torrc'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !/^(DataDirectory|SocksPort|ControlPort|CookieAuthentication|Log|__OwningControllerProcess|PidFile)\b/.test(l));
    const sup = new TorSupervisor({ torPath: 'tor', dataDir, extraTorrc: clientTorrc, bootstrapTimeoutMs: 90_000 });
    const progress: number[] = [];
    sup.on('state', (s: { kind: string; progress?: number }) => {
      if (s.kind === 'bootstrapping' && s.progress !== undefined) progress.push(s.progress);
    });
    try {
      const socks = await sup.start();
      assert.ok(progress.length > 0, 'bootstrap progress was reported');
      const c = client(`http://127.0.0.1:${stack.proxy.port}`, () => socks);
      await c.createAccount();
      await grant(c, 2);
      await refill(c);
      const before = peers.length;
      const r = await c.send((await c.models(true))[0]!.id, [{ role: 'user', content: 'via the supervised tor' }]);
      assert.ok(r.content.length > 0);
      for (const p of peers.slice(before)) assert.equal(p?.role, 'exit');
    } finally {
      await sup.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('several VS Code windows share one tor on the same data directory (a second window no longer fails)', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'llmtor-shared-'));
    const clientTorrc = readFileSync(path.join(net.dataDirs.client, 'torrc'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !/^(DataDirectory|SocksPort|ControlPort|CookieAuthentication|Log|__OwningControllerProcess|PidFile)\b/.test(l));
    const opts = { torPath: 'tor', dataDir, extraTorrc: clientTorrc, bootstrapTimeoutMs: 90_000, waitMs: 100_000 };
    const started: TorSupervisor[] = [];
    try {
      // Two windows opening at the same moment.
      const [a, b] = await Promise.all([startOrJoin(opts), startOrJoin(opts)]);
      for (const r of [a, b]) if (r.supervisor) started.push(r.supervisor);
      assert.equal(started.length, 1, 'exactly one window started tor');
      assert.equal(a.socks.port, b.socks.port);
      assert.equal(a.torPid, b.torPid);
      const joiner = a.supervisor ? b : a;
      // The joining window chats through the shared tor.
      const c = client(`http://127.0.0.1:${stack.proxy.port}`, () => joiner.socks);
      await c.createAccount();
      await grant(c, 2);
      await refill(c);
      const before = peers.length;
      const r = await c.send((await c.models(true))[0]!.id, [{ role: 'user', content: 'from the second window' }]);
      assert.ok(r.content.length > 0);
      for (const p of peers.slice(before)) assert.equal(p?.role, 'exit');
      // The first window closes (its tor goes with it): the other notices and starts the next tor.
      let gone = false;
      const watch = watchShared(joiner.torPid, () => (gone = true), 100);
      await started[0]!.stop();
      for (let i = 0; i < 100 && !gone; i++) await new Promise((res) => setTimeout(res, 100));
      watch.dispose();
      assert.ok(gone, 'the other window saw the shared tor exit');
      const next = await startOrJoin(opts);
      assert.ok(next.supervisor, 'the remaining window started a new tor');
      started.push(next.supervisor);
      assert.notEqual(next.torPid, joiner.torPid);
    } finally {
      for (const s of started) await s.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

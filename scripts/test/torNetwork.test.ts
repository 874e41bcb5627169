/// <reference types="mocha" />
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type net from 'node:net';
import { SocksProxyAgent } from 'socks-proxy-agent';
import { socks5Connect } from '../src/socks5.js';
import { freePorts, startTorNetwork, type PeerOwner, type StreamCircuit, type TorNetwork } from '../src/torNetwork.js';

/** A local HTTP server that records, for every request, which process connected to it. */
async function recordingServer(network: () => TorNetwork | undefined) {
  const seen: Array<{ url: string; owner: PeerOwner | undefined; remoteAddress: string | undefined }> = [];
  const server = http.createServer((req, res) => {
    const own = (server.address() as net.AddressInfo).port;
    const owner = network()?.ownerOfPeerPort(req.socket.remotePort ?? 0, own);
    seen.push({ url: req.url ?? '', owner, remoteAddress: req.socket.remoteAddress });
    res.setHeader('content-type', 'text/plain');
    res.end(`hello ${req.url ?? ''}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, seen, port: (server.address() as net.AddressInfo).port };
}

function get(url: string, socksUrl?: string, timeoutMs = 30_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const agent = socksUrl ? new SocksProxyAgent(socksUrl, { timeout: timeoutMs }) : undefined;
    const req = http.get(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** No circuit (conflux leg) is shared between the two streams. */
function assertDisjoint(x: StreamCircuit, y: StreamCircuit): void {
  const xs = new Set(x.legs.map((l) => l.circuitId));
  for (const l of y.legs) assert.ok(!xs.has(l.circuitId), `circuit ${l.circuitId} shared`);
  assert.notEqual(x.circuitId, y.circuitId);
}

describe('private Tor network on loopback', function () {
  this.timeout(60_000);
  let network: TorNetwork | undefined;
  let app: Awaited<ReturnType<typeof recordingServer>>;
  let t0 = 0;
  const times: Record<string, number> = {};

  before(async function () {
    this.timeout(120_000);
    app = await recordingServer(() => network);
    t0 = Date.now();
    network = await startTorNetwork({
      onionTargetPort: app.port,
      log: process.env['TORNET_VERBOSE'] ? (s) => console.log(`      [tornet] ${s}`) : undefined,
    });
    times['descriptors'] = network.timings.descriptorsMs;
    times['consensus'] = network.timings.consensusMs;
    times['bootstrap'] = network.timings.bootstrapMs;
    times['exitReady'] = network.timings.exitReadyMs;
    times['onionUploaded'] = network.onionAddress ? network.timings.onionReadyMs[network.onionAddress] ?? 0 : 0;
  });

  after(async () => {
    await network?.stop();
    app?.server.close();
    if (Object.keys(times).length) console.log(`      timings (ms since start): ${JSON.stringify(times)}`);
  });

  it('fetches through the exit: the server sees the exit relay, never the client', async () => {
    const n = network!;
    const started = Date.now();
    const { result, circuit } = await n.traceStream(() => get(`http://127.0.0.1:${app.port}/via-exit`, n.socksUrl()), {
      target: `127.0.0.1:${app.port}`,
    });
    times['exitFetchDuration'] = Date.now() - started;
    assert.equal(result.status, 200);
    assert.equal(result.body, 'hello /via-exit');
    const hit = app.seen.find((s) => s.url === '/via-exit');
    assert.ok(hit?.owner, 'owner of the peer port found');
    assert.equal(hit.owner.role, 'exit');
    assert.equal(hit.owner.pid, n.pids.exit);
    assert.notEqual(hit.owner.pid, n.pids.client);
    assert.notEqual(hit.owner.pid, process.pid);
    // the circuit the stream used (every conflux leg, if tor linked two): 3 distinct
    // relays of ours, ending at our exit
    assert.ok(['GENERAL', 'CONFLUX_LINKED'].includes(circuit.purpose), circuit.purpose);
    assert.ok(circuit.legs.some((l) => l.circuitId === circuit.circuitId));
    for (const leg of [circuit, ...circuit.legs]) {
      assert.equal(leg.hops.length, 3);
      assert.equal(leg.hops[2]!.fingerprint, n.exitFingerprint);
      assert.equal(leg.hops[2]!.role, 'exit');
      assert.equal(new Set(leg.hops.map((h) => h.fingerprint)).size, 3);
      assert.ok(leg.hops.every((h) => h.role !== undefined));
    }
  });

  it('a direct connection is attributed to the connecting process (sanity check of ownerOfPeerPort)', async () => {
    const r = await get(`http://127.0.0.1:${app.port}/direct`);
    assert.equal(r.status, 200);
    const hit = app.seen.find((s) => s.url === '/direct');
    assert.deepEqual(hit?.owner, { pid: process.pid, role: 'other' });
  });

  it('fetches the onion service: the server sees the onion service tor, never the client', async () => {
    const n = network!;
    const onion = n.onionAddress!;
    assert.match(onion, /^[a-z2-7]{56}\.onion$/);
    const started = Date.now();
    const { result, circuit } = await n.traceStream(() => get(`http://${onion}/via-onion`, n.socksUrl()), {
      target: `${onion}:80`,
    });
    times['onionFetchDuration'] = Date.now() - started;
    times['onionFetchedSinceStart'] = Date.now() - t0;
    assert.equal(result.status, 200);
    assert.equal(result.body, 'hello /via-onion');
    const hit = app.seen.find((s) => s.url === '/via-onion');
    assert.equal(hit?.owner?.role, 'onionService');
    assert.equal(hit.owner.pid, n.pids.onionService);
    assert.equal(circuit.purpose, 'HS_CLIENT_REND');
    assert.ok(circuit.hops.length >= 3, `rendezvous circuit has ${circuit.hops.length} hops`);
    assert.ok(circuit.hops.every((h) => h.role !== undefined), 'every hop is one of our relays');
  });

  it('uses a fresh circuit for different SOCKS credentials, the same one for the same credentials', async () => {
    const n = network!;
    const target = `127.0.0.1:${app.port}`;
    const url = `http://${target}/isolation`;
    const a = await n.traceStream(() => get(url, n.socksUrl('a')), { target });
    const b = await n.traceStream(() => get(url, n.socksUrl('b')), { target });
    const a2 = await n.traceStream(() => get(url, n.socksUrl('a')), { target });
    assert.equal(a.circuit.socksUsername, 'iso-a');
    assert.equal(b.circuit.socksUsername, 'iso-b');
    assertDisjoint(a.circuit, b.circuit);
    // same credentials: the same circuit (or conflux set) is reused. Tor may replace a circuit
    // between two requests (a conflux leg rebuilt on a loaded machine): then the next request
    // with those credentials must reuse the replacement.
    const id = (t: typeof a) => t.circuit.confluxId ?? t.circuit.circuitId;
    assert.equal(a2.circuit.socksUsername, 'iso-a');
    assertDisjoint(a2.circuit, b.circuit);
    if (id(a2) !== id(a)) {
      const a3 = await n.traceStream(() => get(url, n.socksUrl('a')), { target });
      assert.equal(id(a3), id(a2), 'the same credentials keep one circuit');
    }
    const r1 = await n.traceStream(() => get(url, n.socksUrl()), { target });
    const r2 = await n.traceStream(() => get(url, n.socksUrl()), { target });
    assert.notEqual(r1.circuit.socksUsername, r2.circuit.socksUsername);
    assertDisjoint(r1.circuit, r2.circuit);
    assertDisjoint(r1.circuit, a.circuit);
  });

  it('publishes an onion for another port after start (addOnion)', async () => {
    const n = network!;
    const other = await recordingServer(() => network);
    try {
      const started = Date.now();
      const onion = await n.addOnion(other.port);
      times['addOnionUploaded'] = Date.now() - started;
      assert.notEqual(onion, n.onionAddress);
      const r = await get(`http://${onion}/second`, n.socksUrl());
      times['addOnionFetched'] = Date.now() - started;
      assert.equal(r.body, 'hello /second');
      assert.equal(other.seen[0]?.owner?.role, 'onionService');
      await n.removeOnion(onion);
    } finally {
      other.server.close();
    }
  });

  it('fails without a SOCKS proxy listening — no direct fallback', async () => {
    const [dead] = await freePorts(1);
    const before = app.seen.length;
    await assert.rejects(get(`http://127.0.0.1:${app.port}/dead`, `socks5h://u:p@127.0.0.1:${dead}`, 5_000), /ECONNREFUSED/);
    assert.equal(app.seen.length, before, 'the server saw no request');
  });

  it('stop() ends every tor process and then socks5h requests fail', async () => {
    const n = network!;
    const socksUrl = n.socksUrl();
    const pids = Object.values(n.pids);
    const dir = n.baseDir;
    await n.stop();
    for (const pid of pids) {
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `tor pid ${pid} is gone`);
    }
    if (process.env['LLMTOR_TORNET_KEEP'] !== '1') assert.equal(existsSync(dir), false, 'temporary data dir removed');
    const before = app.seen.length;
    await assert.rejects(get(`http://127.0.0.1:${app.port}/after-stop`, socksUrl, 5_000), /ECONNREFUSED/);
    assert.equal(app.seen.length, before);
  });
});

describe('private Tor network: a tor that exits while the network starts', function () {
  this.timeout(180_000);
  let dir = '';
  before(() => (dir = mkdtempSync(path.join(tmpdir(), 'llmtor-tornet-crash-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A `tor` that exits with status 1 for authority2, printing only to stderr: `times` times, then for real. */
  function flakyTor(times: number): string {
    const wrapper = path.join(dir, `tor-fails-${times}`);
    const count = path.join(dir, `count-${times}`);
    writeFileSync(
      wrapper,
      `#!/bin/sh\ncase "$*" in *authority2/torrc*)\n  n=$(cat ${count} 2>/dev/null || echo 0)\n` +
        `  if [ "$n" -lt ${times} ]; then echo $((n + 1)) > ${count}; echo "simulated crash $((n + 1))" >&2; exit 1; fi;;\nesac\nexec tor "$@"\n`,
      { mode: 0o755 },
    );
    return wrapper;
  }

  it('starts once more on fresh ports, and the network then works', async () => {
    const lines: string[] = [];
    const network = await startTorNetwork({ torPath: flakyTor(1), exitProbe: false, log: (s) => lines.push(s) });
    try {
      assert.ok(lines.some((l) => /starting again on fresh ports after: .*tor authority2 exited during start \(1\)/.test(l)), lines.join('\n'));
      assert.match(network.socksUrl(), /^socks5h:\/\//);
    } finally {
      await network.stop();
    }
  });

  it('fails after a second exit, with what the tor printed on stderr', async () => {
    await assert.rejects(startTorNetwork({ torPath: flakyTor(2), exitProbe: false }), (e: Error) => {
      assert.match(e.message, /tor authority2 exited during start \(1\)/);
      assert.match(e.message, /simulated crash 2/);
      return true;
    });
  });
});

/** Time from sending a request on an open SOCKS stream to its first answer byte. */
async function requestToFirstByte(n: TorNetwork, host: string, port: number, user: string): Promise<number> {
  const { socket, leftover } = await socks5Connect({ socksPort: n.socksPort, host, port, username: user, password: user, timeoutMs: 30_000 });
  try {
    assert.equal(leftover.length, 0);
    const t = Date.now();
    const first = new Promise<void>((resolve, reject) => {
      socket.once('data', () => resolve());
      socket.once('error', reject);
    });
    socket.write(`GET /delay HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
    await first;
    return Date.now() - t;
  } finally {
    socket.destroy();
  }
}

describe('private Tor network with hop delay (hopDelayMs)', function () {
  this.timeout(60_000);
  const delayMs = 20;
  let network: TorNetwork | undefined;
  let app: Awaited<ReturnType<typeof recordingServer>>;

  before(async function () {
    this.timeout(120_000);
    app = await recordingServer(() => network);
    network = await startTorNetwork({ onionTargetPort: app.port, hopDelayMs: delayMs, hopJitterMs: 5 });
  });

  after(async () => {
    await network?.stop();
    app?.server.close();
  });

  it('routes every link between tors through a delaying forwarder: an onion round trip costs ≥ 12 one-way delays', async () => {
    const n = network!;
    // Rendezvous circuit: client → guard → middle → RP ← middle ← guard ← service: six
    // links, each crossed once by the request and once by the answer.
    const rtts: number[] = [];
    for (let i = 0; i < 3; i++) rtts.push(await requestToFirstByte(n, n.onionAddress!, 80, 'hop-delay'));
    const best = Math.min(...rtts);
    assert.ok(best >= 12 * delayMs, `onion request → first byte ${best} ms ≥ ${12 * delayMs} ms (${rtts.join(', ')})`);
    assert.equal(app.seen.at(-1)?.owner?.role, 'onionService');
    // Exit: client → guard → middle → exit, three links each way.
    const exitRtt = await requestToFirstByte(n, '127.0.0.1', app.port, 'hop-delay-exit');
    assert.ok(exitRtt >= 6 * delayMs, `exit request → first byte ${exitRtt} ms ≥ ${6 * delayMs} ms`);
    const conns = n.hopDelay!.connections();
    for (const [role, c] of Object.entries(conns)) assert.ok(c > 0, `${role}'s forwarder carried connections`);
    console.log(`      hop delay ${delayMs} ms: onion request → first byte ${rtts.join(', ')} ms; exit ${exitRtt} ms; forwarder connections ${JSON.stringify(conns)}`);
  });
});

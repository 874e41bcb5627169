import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { freePort } from '@llmtor/devtools';
import { readAll, socksProxyUrl, torRequest, TorTransportError } from '../src/core/torTransport.js';
import { detectSocks, speaksSocks5 } from '../src/core/torSource.js';
import { startSocksServer, type TestSocksServer } from './helpers/socksServer.js';

/** An HTTP server that counts TCP connections and answers every request with its path. */
async function startTarget(): Promise<{ port: number; connections: () => number; requests: string[]; close: () => Promise<void> }> {
  let connections = 0;
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    res.end(`hello ${req.url}`);
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('Tor transport (SOCKS wiring)', () => {
  let socks: TestSocksServer;
  let target: Awaited<ReturnType<typeof startTarget>>;
  beforeEach(async () => {
    socks = await startSocksServer();
    target = await startTarget();
  });
  afterEach(async () => {
    await socks.close();
    await target.close();
  });

  it('sends every request through the SOCKS port with fresh random credentials (a new circuit each)', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await torRequest(`http://127.0.0.1:${target.port}/r${i}`, { socks: { host: '127.0.0.1', port: socks.port } });
      assert.equal(res.status, 200);
      assert.equal((await readAll(res.body)).toString(), `hello /r${i}`);
    }
    assert.equal(socks.records.length, 3);
    const users = new Set(socks.records.map((r) => `${r.username}:${r.password}`));
    assert.equal(users.size, 3, 'each request must use its own SOCKS credentials');
    for (const r of socks.records) {
      assert.deepEqual(r.methods.includes(2), true, 'offers username/password auth (Tor IsolateSOCKSAuth)');
      assert.match(r.username ?? '', /^[0-9a-f]{24}$/);
    }
  });

  it('hands host names, .onion included, to Tor unresolved (socks5h)', async () => {
    const onion = 'llmtorexampleonionaddressxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion';
    await assert.rejects(torRequest(`http://${onion}/v1/models`, { socks: { host: '127.0.0.1', port: socks.port } }), (e: unknown) => e instanceof TorTransportError && e.code === 'tor_unreachable');
    await assert.rejects(torRequest('https://api.example.invalid/v1/models', { socks: { host: '127.0.0.1', port: socks.port } }), TorTransportError);
    assert.deepEqual(
      socks.records.map((r) => [r.atyp, r.host, r.port]),
      [
        [3, onion, 80],
        [3, 'api.example.invalid', 443],
      ],
    );
    assert.match(socksProxyUrl({ host: '127.0.0.1', port: 9050 }, { username: 'a', password: 'b' }), /^socks5h:\/\//);
  });

  it('fails instead of connecting directly when the Tor SOCKS port is closed', async () => {
    const closed = await freePort();
    await assert.rejects(
      torRequest(`http://127.0.0.1:${target.port}/secret`, { socks: { host: '127.0.0.1', port: closed }, timeoutMs: 5000 }),
      (e: unknown) => e instanceof TorTransportError && e.code === 'tor_unreachable',
    );
    assert.equal(target.connections(), 0, 'the target must never see a direct connection');
  });

  it('keeps our agent even when http.request is patched the way VS Code http.proxySupport=override does', async () => {
    const origRequest = http.request;
    const origGet = http.get;
    let patchedCalls = 0;
    // The override patch replaces whatever agent the caller passed with its own.
    (http as { request: unknown }).request = (...args: unknown[]) => {
      patchedCalls++;
      const opts = (typeof args[0] === 'object' && !(args[0] instanceof URL) ? args[0] : args[1]) as http.RequestOptions;
      if (opts) opts.agent = new http.Agent();
      return (origRequest as (...a: unknown[]) => http.ClientRequest)(...args);
    };
    (http as { get: unknown }).get = (http as { request: unknown }).request;
    try {
      const res = await torRequest(`http://127.0.0.1:${target.port}/patched`, { socks: { host: '127.0.0.1', port: socks.port } });
      assert.equal((await readAll(res.body)).toString(), 'hello /patched');
    } finally {
      (http as { request: unknown }).request = origRequest;
      (http as { get: unknown }).get = origGet;
    }
    assert.equal(patchedCalls, 0, 'the transport does not go through the patchable http.request');
    assert.equal(socks.records.length, 1);
  });

  it('refuses to send on a socket that did not come from the Tor agent', async () => {
    await assert.rejects(
      torRequest(`http://127.0.0.1:${target.port}/leak`, {
        socks: { host: '127.0.0.1', port: socks.port },
        // Simulates a patched agent stack that hands back a direct connection.
        onAgent: (agent) => {
          (agent as unknown as { connect: () => Promise<net.Socket> }).connect = async () => net.connect(target.port, '127.0.0.1');
        },
      }),
      (e: unknown) => e instanceof TorTransportError && e.code === 'foreign_socket',
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(target.requests, [], 'no request may reach the target over a non-Tor socket');
  });

  it('recognises a SOCKS5 port and ignores an open port that is not SOCKS', async () => {
    assert.equal(await speaksSocks5({ host: '127.0.0.1', port: socks.port }), true);
    assert.equal(await speaksSocks5({ host: '127.0.0.1', port: target.port }, 500), false);
    const found = await detectSocks([{ host: '127.0.0.1', port: await freePort() }, { host: '127.0.0.1', port: target.port }, { host: '127.0.0.1', port: socks.port }], 500);
    assert.deepEqual(found, { host: '127.0.0.1', port: socks.port });
  });
});

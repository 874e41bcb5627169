/**
 * `npm run bench -w vscode-extension` (part of `make bench`): time to the first streamed byte
 * of an answer from an onion service, over the private Tor network with hop delay
 * (each link between two tors delayed 25–35 ms one way; docs/tor-test-network.md):
 *
 *   fresh   a new circuit built at send time (random SOCKS credentials; the pool off)
 *   reused  one circuit kept for every request (the same SOCKS credentials)
 *   pooled  a pre-built single-use circuit from the extension's pool (circuitPool.ts)
 *
 * The server is a local SSE stream published as the onion (what the proxy's chat looks like
 * on the wire; the proxy's own CPU is in proxy/bench). Modes alternate in each of N rounds;
 * medians. Target (issue 14): pooled ≤ 1.2 × reused.
 */
import http from 'node:http';
import type net from 'node:net';
import { loadavg } from 'node:os';
import { cpuModel } from '@llmtor/devtools/cpuModel';
import { startTorNetwork } from '@llmtor/devtools/torNetwork';
import { freshCredentials, torRequest, type TorResponse } from '../../src/core/torTransport.js';
import { torTransport } from '../../src/core/transport.js';

const ROUNDS = Math.min(20, Math.max(3, Number(process.env['TORBENCH_N'] ?? 10)));
const HOP_DELAY_MS = 25;
const HOP_JITTER_MS = 10;
const TARGET = 1.2;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** ms from the request to the first body byte; the rest of the body is drained. */
async function firstByte(send: () => Promise<TorResponse>): Promise<number> {
  const t0 = performance.now();
  const res = await send();
  let t = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    if (t === 0 && chunk.length > 0) t = performance.now() - t0;
  }
  if (res.status !== 200 || t === 0) throw new Error(`bad answer ${res.status}`);
  return t;
}

async function waitUntil(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main(): Promise<void> {
  // An SSE answer: headers and the first event at once, then a few more.
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    let i = 0;
    const next = () => {
      res.write(`data: {"choices":[{"delta":{"content":"piece ${i}"}}]}\n\n`);
      if (++i < 3) setTimeout(next, 5);
      else res.end('data: [DONE]\n\n');
    };
    next();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const load0 = loadavg();
  const t0 = Date.now();
  const network = await startTorNetwork({ onionTargetPort: port, hopDelayMs: HOP_DELAY_MS, hopJitterMs: HOP_JITTER_MS, exitProbe: false, timeoutMs: 120_000 });
  try {
    const socks = { host: '127.0.0.1', port: network.socksPort };
    const url = `http://${network.onionAddress!}/v1/chat/completions`;
    console.log(`  private Tor network up in ${Date.now() - t0} ms; hop delay ${HOP_DELAY_MS}–${HOP_DELAY_MS + HOP_JITTER_MS} ms one way per link`);
    const fresh = torTransport(socks, { pool: false });
    const reusedCreds = freshCredentials();
    const reused = () => torRequest(url, { socks, credentials: reusedCreds });
    await firstByte(reused); // builds the circuit every later "reused" request uses
    const rows: Array<{ fresh: number; reused: number; pooled: number }> = [];
    let misses = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const f = await firstByte(() => fresh.request(url));
      const u = await firstByte(reused);
      // A pool of its own per round, so that no background circuit building overlaps the
      // other two measurements. Its first request starts the schedule (a fresh circuit, not
      // measured); the measured one takes a ready connection.
      const pooledTor = torTransport(socks, { pool: { size: 2, meanIntervalMs: 400 } });
      try {
        await firstByte(() => pooledTor.request(url, { prebuilt: true }));
        const pool = pooledTor.poolFor!(url)!;
        await waitUntil('a pooled connection', () => pool.readyCount > 0, 60_000);
        const before = pool.stats.misses;
        const p = await firstByte(() => pooledTor.request(url, { prebuilt: true }));
        misses += pool.stats.misses - before;
        rows.push({ fresh: f, reused: u, pooled: p });
      } finally {
        pooledTor.close!();
      }
      process.stdout.write(`  round ${r + 1}/${ROUNDS}: fresh ${f.toFixed(0)} ms, reused ${u.toFixed(0)} ms, pooled ${rows.at(-1)!.pooled.toFixed(0)} ms\n`);
    }
    const m = { fresh: median(rows.map((x) => x.fresh)), reused: median(rows.map((x) => x.reused)), pooled: median(rows.map((x) => x.pooled)) };
    const ratio = m.pooled / m.reused;
    const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
    console.log('');
    console.log(`Tor first-byte benchmark, ${new Date().toISOString().slice(0, 16)}Z, ${cpuModel()}, Node ${process.version}; load average ${la(load0)} → ${la(loadavg())}`);
    console.log(`  onion, time to first streamed byte (median of ${ROUNDS}): fresh ${m.fresh.toFixed(0)} ms, reused ${m.reused.toFixed(0)} ms, pooled ${m.pooled.toFixed(0)} ms${misses ? ` (${misses} pool misses)` : ''}`);
    console.log(`  fresh / reused ${(m.fresh / m.reused).toFixed(2)}×; pooled / reused ${ratio.toFixed(2)}×`);
    console.log(`  target pooled ≤ ${TARGET}× reused: ${ratio <= TARGET ? 'met' : 'MISSED'} — ${ratio.toFixed(2)}× — ${cpuModel()}`);
  } finally {
    await network.stop();
    server.close();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);

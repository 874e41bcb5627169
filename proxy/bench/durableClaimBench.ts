/**
 * What a durable claim costs: the redemption store's claim alone, against a real primary with
 * one healthy replica on loopback, with `WAIT 1` after each claim (durableClaims.replicas = 1,
 * the default with Sentinel or Cluster) and without (replicas = 0). Two connections to the same
 * primary, measured in interleaved rounds; figures are medians over the rounds:
 *   - latency: one claim at a time (p50, p99), so the WAIT round trip shows in full;
 *   - throughput: 64 claims in flight (concurrent claims share one WAIT).
 *
 * Usage: node dist/bench/durableClaimBench.js [--rounds 5] [--n 2000]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { freePort, startRedis } from '@llmtor/devtools';
import { Redis } from 'ioredis';
import { RedisRedemptionStore } from '../src/redemption/redisStore.js';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);

export async function runDurableClaimBench(o: { rounds?: number; n?: number } = {}): Promise<Record<string, number>> {
  const ROUNDS = o.rounds ?? 5;
  const N = o.n ?? 2000;
  const load0 = loadavg();
  const primary = await startRedis({ forceSpawn: true });
  const replicaPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'llmtor-bench-replica-'));
  const replica = spawn('redis-server', ['--port', String(replicaPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--replicaof', '127.0.0.1', String(primary.port)], { stdio: 'ignore' });
  const clients: Redis[] = [];
  try {
    const probe = new Redis(replicaPort, '127.0.0.1');
    probe.on('error', () => undefined);
    clients.push(probe);
    for (let i = 0; !(await probe.info('replication')).includes('master_link_status:up'); i++) {
      if (i > 100) throw new Error('the replica did not connect');
      await new Promise((r) => setTimeout(r, 50));
    }
    const store = (replicas: number) => {
      const c = new Redis(primary.url);
      c.on('error', () => undefined);
      clients.push(c);
      return new RedisRedemptionStore(c, 'llmtor:rdm:', 5_000, { replicas, timeoutMs: 500 });
    };
    const plain = store(0);
    const durable = store(1);
    const now = Date.now();
    const claim = async (s: RedisRedemptionStore) => {
      const r = await s.claim({ spentIds: [randomBytes(32).toString('hex')], expiresAt: [now + 3_600_000], binding: randomBytes(16).toString('hex'), now: Date.now(), leaseMs: 300_000 });
      if (r.kind !== 'claimed') throw new Error(`claim: ${r.kind}`);
    };
    const latency = async (s: RedisRedemptionStore) => {
      const t: number[] = [];
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        await claim(s);
        t.push(performance.now() - t0);
      }
      return { p50: pct(t, 50), p99: pct(t, 99) };
    };
    const throughput = async (s: RedisRedemptionStore) => {
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          while (next++ < N * 2) await claim(s);
        }),
      );
      return (N * 2) / ((performance.now() - t0) / 1000);
    };
    await latency(plain);
    await latency(durable);
    const rows: { p50: number[]; p99: number[]; rps: number[] }[] = [0, 1].map(() => ({ p50: [], p99: [], rps: [] }));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) {
        const s = i === 0 ? plain : durable;
        const l = await latency(s);
        rows[i]!.p50.push(l.p50);
        rows[i]!.p99.push(l.p99);
        rows[i]!.rps.push(await throughput(s));
      }
    }
    const out = {
      plainP50Ms: median(rows[0]!.p50),
      plainP99Ms: median(rows[0]!.p99),
      durableP50Ms: median(rows[1]!.p50),
      durableP99Ms: median(rows[1]!.p99),
      plainClaimsPerS: median(rows[0]!.rps),
      durableClaimsPerS: median(rows[1]!.rps),
    };
    const f = (x: number) => x.toFixed(3);
    process.stdout.write(
      `  CPU ${cpus()[0]?.model ?? '?'} × ${cpus().length}, load ${load0.map((x) => x.toFixed(1)).join(' ')}; ${ROUNDS} rounds × ${N} claims\n` +
        `  one at a time: without WAIT p50 ${f(out.plainP50Ms)} ms p99 ${f(out.plainP99Ms)} ms; with WAIT 1 p50 ${f(out.durableP50Ms)} ms p99 ${f(out.durableP99Ms)} ms (+${f(out.durableP50Ms - out.plainP50Ms)} ms p50)\n` +
        `  64 in flight: without WAIT ${Math.round(out.plainClaimsPerS)} claims/s; with WAIT 1 ${Math.round(out.durableClaimsPerS)} claims/s (ratio ${(out.durableClaimsPerS / out.plainClaimsPerS).toFixed(2)})\n`,
    );
    return out;
  } finally {
    for (const c of clients) c.disconnect();
    replica.kill('SIGKILL');
    await primary.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  await runDurableClaimBench({ rounds: arg('rounds'), n: arg('n') });
}

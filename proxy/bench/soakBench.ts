/**
 * Soak (issue 13): mixed issuance and redemption against one real redis-server (AOF on), which is
 * SIGKILLed and restarted every few minutes, for a bounded time (default 10 min). Reports errors,
 * p50/p99 per kind (overall, and outside the outages), double spends, Redis and process memory
 * growth. Not in `make test`: `npm run soak -w proxy [-- --seconds 600 --restart-every 180]`.
 *
 * - issuance: the whole proxy (issuance role: account, ledger debit, blind signing), batches of
 *   10 random blinded messages, 2 in flight;
 * - redemption: the redemption module (its own keys, a stand-in upstream), 8 in flight; of each
 *   10 requests 8 spend a fresh token, 1 repeats an answered request (expects the cached answer),
 *   1 sends an answered token with another prompt (expects 409 token_spent: a 200 is a double spend).
 * During an outage every request should get a fast 503; anything else non-2xx/409 is an error.
 */
import { cpus, loadavg } from 'node:os';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { encodeBatchTokenRequest, MEDIA_TYPE_BATCH_REQUEST, TOKEN_TYPE_BLIND_RSA, type TokenRequest } from '@llmtor/protocol';
import { startRedis } from '@llmtor/devtools';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config.js';
import { adminGrant, createAccount } from '../src/dev/issuanceClient.js';
import { generateEphemeralKeys } from '../src/keys/ephemeralKeySource.js';
import { startProxy } from '../src/stack.js';
import type { KeySource } from '../src/keys/keySource.js';
import { LocalStandInUpstream } from '../test/support/upstreamStandIn.js';
import { authorization, Mint } from '../test/redemption/support/tokens.js';
import { startTestApp } from '../test/redemption/support/testApp.js';

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

interface Sample {
  kind: 'issue' | 'redeem' | 'replay' | 'respend';
  status: number;
  ms: number;
  outage: boolean;
}

export async function runSoak(o: { seconds?: number; restartEverySeconds?: number } = {}): Promise<{ doubleSpends: number; errors: number }> {
  const seconds = o.seconds ?? 600;
  const restartEvery = (o.restartEverySeconds ?? 180) * 1000;
  const load0 = loadavg()[0]!;
  const redis = await startRedis({ forceSpawn: true, appendOnly: true });
  const up = new LocalStandInUpstream({ record: false });
  await up.listen();
  const keys = await generateEphemeralKeys(Date.now());
  const credit = keys.entries.find((e) => e.meta.purpose === 'credit')!;
  const source: KeySource = { description: 'soak keys', load: async () => ({ ...keys, problems: [] }) };
  const config = loadConfig({
    env: {},
    overrides: {
      roles: ['issuance'],
      logLevel: 'silent',
      listen: { host: '127.0.0.1', port: 0 },
      adminToken: 'soak-admin-token-0123456789abcdefghijklmn',
      accounts: { pepper: 'soak-pepper-0123456789abcdefghijklmnopqr' },
      redis: { issuance: { url: redis.url } },
      issuance: { requestsPerMinute: 1_000_000 },
    },
  });
  const proxy = await startProxy(config, { keySource: source });
  const mint = await Mint.create();
  const abuse = await mint.abuseHeader();
  const app = await startTestApp({
    mint,
    redisUrl: redis.url,
    config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } }, rateLimit: { requests: 1_000_000 } },
  });
  const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  probe.on('error', () => undefined);
  const used = async () => Number(/used_memory:(\d+)/.exec(await probe.info('memory'))?.[1]);

  const samples: Sample[] = [];
  const errors = new Map<string, number>();
  let doubleSpends = 0;
  let outage = false;
  let restarts = 0;
  const end = Date.now() + seconds * 1000;
  const memStart = { redis: await used(), rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed };

  const record = (kind: Sample['kind'], status: number, t0: number, expected: number[], text = '') => {
    samples.push({ kind, status, ms: performance.now() - t0, outage });
    if (!expected.includes(status) && status !== 503) {
      const k = `${kind} ${status} ${text.slice(0, 60)}`;
      errors.set(k, (errors.get(k) ?? 0) + 1);
    }
  };

  try {
    const accountKey = await createAccount(proxy.url);
    await adminGrant(proxy.url, config.adminToken!, accountKey, 1_000_000);
    const msgs = Array.from({ length: 10 }, () => {
      const m = new Uint8Array(randomBytes(256));
      m[0] = m[0]! & 0x7f;
      return m;
    });
    const reqs: TokenRequest[] = msgs.map((m) => ({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: m }));
    const batch = encodeBatchTokenRequest(reqs);
    let seq = 0;
    const issuer = async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        const r = await fetch(`${proxy.url}/token-request`, {
          method: 'POST',
          headers: { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_BATCH_REQUEST, 'idempotency-key': `soak-${seq++}` },
          body: batch,
        }).then(
          async (res) => ({ status: res.status, text: res.status === 200 ? (await res.arrayBuffer(), '') : await res.text() }),
          () => ({ status: 0, text: 'fetch failed' }),
        );
        record('issue', r.status, t0, [200], r.text);
        if (r.status !== 200) await new Promise((res) => setTimeout(res, 50));
      }
    };

    let pool: Uint8Array[] = [];
    const answered: { token: Uint8Array; prompt: string }[] = [];
    let n = 0;
    const send = async (kind: Sample['kind'], token: Uint8Array, prompt: string, expected: number[]) => {
      const t0 = performance.now();
      const r = await fetch(`${app.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: authorization([token]), 'llmtor-abuse': abuse },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: prompt }] }),
      }).then(
        async (res) => ({ status: res.status, text: await res.text() }),
        () => ({ status: 0, text: 'fetch failed' }),
      );
      record(kind, r.status, t0, expected, r.text);
      return r.status;
    };
    const redeemer = async () => {
      while (Date.now() < end) {
        const i = n++;
        const old = answered.length > 0 ? answered[Math.floor(Math.random() * answered.length)]! : undefined;
        if (old && i % 10 === 8) {
          await send('replay', old.token, old.prompt, [200]);
        } else if (old && i % 10 === 9) {
          if ((await send('respend', old.token, `${old.prompt} again`, [409])) === 200) doubleSpends++;
        } else {
          if (pool.length === 0) pool = mint.bulkTokens('credit', 200);
          const token = pool.pop()!;
          const prompt = `soak ${i}`;
          if ((await send('redeem', token, prompt, [200])) === 200 && answered.length < 5_000) answered.push({ token, prompt });
        }
        // Keep the loop bounded in rate while Redis is down (every answer is then a fast 503).
        if (outage) await new Promise((res) => setTimeout(res, 20));
      }
    };
    const restarter = async () => {
      for (let next = Date.now() + restartEvery; next + 5_000 < end; next += restartEvery) {
        await new Promise((res) => setTimeout(res, next - Date.now()));
        outage = true;
        await redis.kill('SIGKILL');
        await new Promise((res) => setTimeout(res, 1_000));
        await redis.restart();
        restarts++;
        // Clients reconnect within their retry interval; count that as part of the outage.
        await new Promise((res) => setTimeout(res, 2_000));
        outage = false;
      }
    };
    await Promise.all([issuer(), issuer(), ...Array.from({ length: 8 }, redeemer), restarter()]);
  } finally {
    const memEnd = { redis: await used().catch(() => NaN), rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed };
    probe.disconnect();
    await app.close();
    await proxy.stop();
    await up.close();
    await redis.stop();
    const kinds: Sample['kind'][] = ['issue', 'redeem', 'replay', 'respend'];
    const lines = [
      `soak — ${new Date().toISOString()}, ${cpus()[0]?.model ?? 'CPU'}, ${cpus().length} vCPU, Node ${process.version}, ${seconds} s, Redis SIGKILL+restart every ${restartEvery / 1000} s (${restarts} restarts), load average ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`,
    ];
    for (const k of kinds) {
      const s = samples.filter((x) => x.kind === k);
      const calm = s.filter((x) => !x.outage);
      const by = new Map<number, number>();
      for (const x of s) by.set(x.status, (by.get(x.status) ?? 0) + 1);
      lines.push(
        `  ${k.padEnd(8)} ${String(s.length).padStart(7)} requests; statuses ${JSON.stringify(Object.fromEntries(by))}; p50 ${pct(calm.map((x) => x.ms), 50).toFixed(1)} ms, p99 ${pct(calm.map((x) => x.ms), 99).toFixed(1)} ms outside outages; p99 during outages ${pct(s.filter((x) => x.outage).map((x) => x.ms), 99).toFixed(1)} ms`,
      );
    }
    lines.push(`  errors (not 2xx, not the expected 409, not 503): ${errors.size === 0 ? 'none' : JSON.stringify(Object.fromEntries(errors))}`);
    lines.push(`  double spends: ${doubleSpends}`);
    lines.push(
      `  memory: Redis used_memory ${(memStart.redis / 1e6).toFixed(1)} → ${(memEnd.redis / 1e6).toFixed(1)} MB; this process RSS ${(memStart.rss / 1e6).toFixed(0)} → ${(memEnd.rss / 1e6).toFixed(0)} MB, heap ${(memStart.heap / 1e6).toFixed(0)} → ${(memEnd.heap / 1e6).toFixed(0)} MB`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return { doubleSpends, errors: [...errors.values()].reduce((a, b) => a + b, 0) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const r = await runSoak({ seconds: arg('--seconds'), restartEverySeconds: arg('--restart-every') });
  process.exit(r.doubleSpends > 0 || r.errors > 0 ? 1 : 0);
}

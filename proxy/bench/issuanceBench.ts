/**
 * Tokens/s of HTTP batched issuance (batches of 100, real Redis, signer pool)
 * against the raw signer rates measured in the same run: one thread signing in
 * a loop, and the worker pool alone. Prints medians and ratios; the target is
 * HTTP ≥ 70 % of the raw single-thread rate per core.
 */
import { availableParallelism, cpus } from 'node:os';
import { encodeBatchTokenRequest, MEDIA_TYPE_BATCH_REQUEST, TOKEN_TYPE_BLIND_RSA, type TokenRequest } from '@llmtor/protocol';
import { BlindSigner, SignerPool } from '@llmtor/protocol/server';
import { startRedis } from '@llmtor/devtools';
import { loadConfig } from '../src/config.js';
import { adminGrant, createAccount } from '../src/dev/issuanceClient.js';
import { generateEphemeralKeys } from '../src/keys/ephemeralKeySource.js';
import { startProxy } from '../src/stack.js';
import type { KeySource } from '../src/keys/keySource.js';

const BATCH = 100;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number) => x.toFixed(0).padStart(7);

function randomMsgs(n: number): Uint8Array[] {
  return Array.from({ length: n }, () => {
    const m = new Uint8Array(256);
    crypto.getRandomValues(m);
    m[0] = m[0]! & 0x7f;
    return m;
  });
}

async function timeIt(f: () => Promise<number>): Promise<number> {
  const t = performance.now();
  const n = await f();
  return n / ((performance.now() - t) / 1000);
}

export async function runIssuanceBench(o: { runs?: number; httpTokens?: number; concurrency?: number; store?: 'redis' | 'memory' } = {}): Promise<Record<string, number>> {
  const runs = o.runs ?? 3;
  const cores = availableParallelism();
  const httpTokens = o.httpTokens ?? 20_000;
  const concurrency = o.concurrency ?? 2 * cores;
  const keys = await generateEphemeralKeys(Date.now());
  const credit = keys.entries.find((e) => e.meta.purpose === 'credit')!;
  const signer = new BlindSigner(keys.privateKeys.get(credit.meta.keyId)!);
  const msgs = randomMsgs(2_000);

  // 1. Raw, one thread.
  const single: number[] = [];
  for (let r = 0; r < runs; r++) single.push(await timeIt(async () => (msgs.forEach((m) => signer.sign(m)), msgs.length)));

  // 2. Raw, worker pool (batches of 100, enough in flight to keep every worker busy).
  const pool = new SignerPool(cores);
  await pool.setKeys([{ keyId: credit.meta.keyId, pkcs8: new Uint8Array(keys.privateKeys.get(credit.meta.keyId)!.export({ type: 'pkcs8', format: 'der' })) }]);
  const poolRates: number[] = [];
  for (let r = 0; r < runs; r++) {
    poolRates.push(
      await timeIt(async () => {
        let left = httpTokens / BATCH;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (left-- > 0) await pool.signBatch(credit.meta.keyId, msgs.slice(0, BATCH));
          }),
        );
        return httpTokens;
      }),
    );
  }
  await pool.close();

  // 3. HTTP issuance through the whole proxy (auth, rate limit, Lua debit, pool, response stored for retries).
  const redis = o.store === 'memory' ? undefined : await startRedis();
  const source: KeySource = { description: 'bench keys', load: async () => ({ ...keys, problems: [] }) };
  const config = loadConfig({
    env: {},
    overrides: {
      roles: ['issuance'],
      logLevel: 'silent',
      listen: { host: '127.0.0.1', port: 0 },
      adminToken: 'bench-admin-token-0123456789abcdefghijkl',
      accounts: { pepper: 'bench-pepper-0123456789abcdefghijklmnopq' },
      redis: redis ? { issuance: { url: redis.url } } : {},
      issuance: { requestsPerMinute: 1_000_000, signerThreads: cores },
    },
  });
  const proxy = await startProxy(config, { keySource: source });
  const httpRates: number[] = [];
  try {
    const accountKey = await createAccount(proxy.url);
    await adminGrant(proxy.url, config.adminToken!, accountKey, httpTokens * (runs + 1));
    const reqs: TokenRequest[] = msgs.slice(0, BATCH).map((m) => ({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: m }));
    const body = encodeBatchTokenRequest(reqs);
    let seq = 0;
    const post = async () => {
      const res = await fetch(`${proxy.url}/token-request`, {
        method: 'POST',
        headers: { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_BATCH_REQUEST, 'idempotency-key': `bench-${seq++}` },
        body,
      });
      if (res.status !== 200) throw new Error(`issuance answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    };
    for (let i = 0; i < concurrency; i++) await post(); // warm-up
    for (let r = 0; r < runs; r++) {
      httpRates.push(
        await timeIt(async () => {
          let left = httpTokens / BATCH;
          await Promise.all(Array.from({ length: concurrency }, async () => {
            while (left-- > 0) await post();
          }));
          return httpTokens;
        }),
      );
    }
  } finally {
    await proxy.stop();
    await redis?.stop();
  }

  const s = median(single);
  const p = median(poolRates);
  const h = median(httpRates);
  const out = { cores, singleThread: s, pool: p, http: h, httpVsPool: h / p, httpPerCoreVsSingle: h / cores / s };
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  process.stdout.write(
    [
      `issuance bench — ${new Date().toISOString().slice(0, 10)}, ${cpu}, ${cores} cores, Node ${process.version}, store ${redis ? 'redis' : 'memory'}, batches of ${BATCH}, ${concurrency} in flight, medians of ${runs}`,
      `  raw signer, 1 thread        ${fmt(s)} tokens/s`,
      `  raw signer pool (${cores} workers) ${fmt(p)} tokens/s   (${(p / s).toFixed(2)}× one thread)`,
      `  HTTP batched issuance       ${fmt(h)} tokens/s`,
      `  HTTP / pool                 ${(100 * out.httpVsPool).toFixed(0)} %`,
      `  HTTP per core / 1 thread    ${(100 * out.httpPerCoreVsSingle).toFixed(0)} %   (target ≥ 70 %)`,
      '',
    ].join('\n'),
  );
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runIssuanceBench({ store: process.argv.includes('--memory') ? 'memory' : 'redis' }).catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}

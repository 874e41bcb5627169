/**
 * Redis memory per spent token: N tokens claimed and finished through the redemption store (the
 * real scripts, so the real key shape), as one signing key would see them (one redemption end),
 * and INFO memory `used_memory` before and after, divided by N. A fresh redis-server with default
 * settings (hash-max-listpack-entries 128). The retry cache is left out (no answer cached): it
 * lives for minutes, the spent set for the redemption window.
 *
 * Usage: node dist/bench/spentMemoryBench.js [--n 100000] [--digits 3]
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { startRedis } from '@llmtor/devtools';
import { Redis } from 'ioredis';
import { RedisRedemptionStore } from '../src/redemption/redisStore.js';

async function usedMemory(r: Redis): Promise<number> {
  const info = await r.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

export async function runSpentMemoryBench(o: { n?: number; digits?: number } = {}): Promise<Record<string, number>> {
  const N = o.n ?? 100_000;
  const redis = await startRedis({ forceSpawn: true });
  const r = new Redis(redis.url);
  try {
    const digits = o.digits ?? 3;
    const store = new RedisRedemptionStore(r, 'llmtor:rdm:', 5_000, { replicas: 0, timeoutMs: 0 }, { bucketHexDigits: digits });
    const now = Date.now();
    const expiresAt = now + 60 * 86_400_000;
    const before = await usedMemory(r);
    const inFlight = 64;
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < N) {
          next++;
          const id = randomBytes(32).toString('hex');
          const binding = randomBytes(32).toString('hex');
          const c = await store.claim({ spentIds: [id], expiresAt: [expiresAt], binding, now, leaseMs: 300_000 });
          if (c.kind !== 'claimed') throw new Error(`claim: ${c.kind}`);
          await store.finish([id], [expiresAt], binding, undefined, 60_000);
        }
      }),
    );
    const after = await usedMemory(r);
    const keys = await r.dbsize();
    const perToken = (after - before) / N;
    process.stdout.write(`spent tokens ${N}, bucket digits ${digits}, keys ${keys}, used_memory +${after - before} B → ${perToken.toFixed(1)} B per spent token\n`);
    return { n: N, digits, keys, bytesPerToken: perToken };
  } finally {
    r.disconnect();
    await redis.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  await runSpentMemoryBench({ n: arg('--n'), digits: arg('--digits') });
}

/**
 * CPU per request of each step the redemption path adds to a pass-through, measured
 * one step at a time in this process (`process.cpuUsage`, so other processes on a
 * shared machine do not count), with the same shapes as redemptionBench.ts: one
 * credit token, a cached LLMTor-Abuse header, a two-message chat request, an answer
 * of the stand-in upstream's size, the default local moderation rules, and the Lua
 * claim + finish against a real Redis (client side only, 32 in flight; with a pseudonym and the
 * legacy look-up, as the app's defaults do).
 *
 * The steps are measured in interleaved rounds and the medians printed; what the
 * steps do not cover (HTTP, Koa, sockets, promises, GC) is the difference to the
 * server CPU per request that redemptionBench.ts measures, or see profileBreakdown.ts.
 *
 * Usage: node dist/bench/redemptionStepsBench.js [--rounds 5]
 */
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { startRedis } from '@llmtor/devtools';
import { Keyring, keyEntry, toBase64Url } from '@llmtor/protocol';
import { Redis } from 'ioredis';
import { createModerator } from '../src/moderation/index.js';
import { encodeAnswer } from '../src/redemption/cachedAnswer.js';
import { canonicalJson, moderationInput, parseChatRequest } from '../src/redemption/chatRequest.js';
import { moderationSchema, requestTransformSchema } from '../src/redemption/config.js';
import { AbuseTokenCache, ChallengeContext, parseCreditTokens, verifyCreditTokens } from '../src/redemption/credentials.js';
import { RedisRedemptionStore } from '../src/redemption/redisStore.js';
import { TokenSecrets } from '../src/redemption/tokenHashes.js';
import { upstreamBody } from '../src/upstream/requestTransform.js';
import { Mint } from '../test/redemption/support/tokens.js';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** µs of this process's CPU per call of `f`, over `n` calls. */
async function cpuUs(n: number, f: (i: number) => unknown): Promise<number> {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const r = f(i);
    if (r instanceof Promise) await r;
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

export async function runRedemptionStepsBench(o: { rounds?: number } = {}): Promise<Record<string, number>> {
  const ROUNDS = o.rounds ?? 5;
  const N = 4000;
  const mint = await Mint.create();
  const keyring = new Keyring(mint.metadata().map(keyEntry));
  const challenge = new ChallengeContext(mint.issuer);
  const now = Date.now();
  const tokens = mint.bulkTokens('credit', 64);
  const headers = tokens.map((t) => `PrivateToken token=${toBase64Url(t)}`);
  const abuse = await mint.abuseHeader();
  const abuseCache = new AbuseTokenCache();
  abuseCache.verifyHeader(abuseCache.parseHeader(abuse)!, keyring, now, challenge.digest);
  const bodies = Array.from({ length: 64 }, (_, i) =>
    Buffer.from(JSON.stringify({ model: 'm', stream: false, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: `Question number ${i}: what is the capital of France?` }] })),
  );
  const req = parseChatRequest(bodies[0]!);
  const secrets = new TokenSecrets([tokens[0]!]);
  const binding = secrets.binding(canonicalJson(req));
  // The stand-in upstream's JSON answer is ~300 bytes.
  const answer = Buffer.from(JSON.stringify({ id: 'chatcmpl-x', object: 'chat.completion', created: 0, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(120) }, finish_reason: 'stop' }], usage: { prompt_tokens: 20, completion_tokens: 8, total_tokens: 28 } }));
  const moderator = createModerator(moderationSchema.parse({ provider: 'local' }));
  const transform = requestTransformSchema.parse({});
  const signal = new AbortController().signal;

  const redis = await startRedis({ forceSpawn: true });
  const client = new Redis(redis.url);
  client.on('error', () => undefined);
  // The app's defaults: legacy look-up on, 4 bucket digits; a pseudonym as a request with abuse tokens has.
  const store = new RedisRedemptionStore(client, 'llmtor:rdm:', 5_000, undefined, { bucketHexDigits: 4, legacyPrefix: 'llmtor:{rdm}:' });
  const pseudonym = { permanent: randomBytes(32).toString('hex'), transient: randomBytes(32).toString('hex') };
  const claimAndFinish = async (n: number): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next++ < n) {
          const spentIds = [randomBytes(32).toString('hex')];
          const b = randomBytes(16).toString('hex');
          const r = await store.claim({ spentIds, expiresAt: [now + 3_600_000], binding: b, now: Date.now(), leaseMs: 300_000, pseudonym, rateLimit: { limit: 1e9, windowMs: 60_000 } });
          if (r.kind !== 'claimed') throw new Error(`claim: ${r.kind}`);
          await store.finish(spentIds, [now + 3_600_000], b, answer, 60_000);
        }
      }),
    );
  };
  // The random ids and bindings cost CPU too; measured on their own and taken off.
  const idsOnly = () => {
    randomBytes(32).toString('hex');
    randomBytes(16).toString('hex');
  };

  const steps: [string, () => Promise<number>][] = [
    ['Authorization parse + base64url decode (1 token)', () => cpuUs(N, (i) => parseCreditTokens(headers[i & 63], 8))],
    ['LLMTor-Abuse: hash the header, cache hit, key re-check', () => cpuUs(N, () => abuseCache.verifyHeader(abuseCache.parseHeader(abuse)!, keyring, now, challenge.digest))],
    ['chat request: JSON.parse + validation', () => cpuUs(N, (i) => parseChatRequest(bodies[i & 63]!))],
    ['credit token: decode + RSA-PSS verify + SHA-256 spent id', () => cpuUs(N / 2, (i) => verifyCreditTokens([tokens[i & 63]!], keyring, now, challenge.digest))],
    ['request binding: HKDF (3 HMAC) + canonical JSON + HMAC', () => cpuUs(N, (i) => new TokenSecrets([tokens[i & 63]!]).binding(canonicalJson(req)))],
    ['local moderation (default rules)', () => cpuUs(N, () => moderator.moderate(moderationInput(req), signal))],
    ['upstream body (model swap, caps)', () => cpuUs(N, () => upstreamBody(req, 'm', transform))],
    ['retry cache: encode + AES-256-GCM seal (~300 B)', () => cpuUs(N, () => secrets.seal(encodeAnswer({ kind: 'json', status: 200, body: answer }), binding))],
    [
      'Redis client: claim + finish scripts (ioredis, 32 in flight)',
      async () => {
        const withIds = await cpuUs(1, () => claimAndFinish(N / 2));
        return withIds / (N / 2) - (await cpuUs(N / 2, idsOnly));
      },
    ],
  ];
  const results = new Map<string, number[]>(steps.map(([name]) => [name, []]));
  for (const [, run] of steps) await run(); // warm-up (JIT, script load)
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order each round: a drift in load does not always hit the same step.
    for (let s = 0; s < steps.length; s++) {
      const [name, run] = steps[(s + r) % steps.length]!;
      results.get(name)!.push(await run());
    }
  }
  await client.quit();
  await redis.stop();

  const out: Record<string, number> = {};
  let total = 0;
  console.log(`Redemption steps, CPU per request (medians of ${ROUNDS} rounds):`);
  for (const [name, xs] of results) {
    const m = median(xs);
    out[name] = m;
    total += m;
    console.log(`  ${m.toFixed(1).padStart(6)} µs  ${name}`);
  }
  console.log(`  ${total.toFixed(1).padStart(6)} µs  sum of the steps`);
  out.total = total;
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--rounds');
  await runRedemptionStepsBench(i > 0 ? { rounds: Number(process.argv[i + 1]) } : {});
}

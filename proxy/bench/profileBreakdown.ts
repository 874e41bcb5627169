/**
 * Splits a V8 CPU profile (`--cpu-prof`, e.g. from `BENCH_PROFILE=<dir>` of the
 * redemption bench) into the parts of a request's cost, in µs per request.
 *
 * Each sample is given to the first category whose rule matches, walking from the
 * sampled frame up its stack (the innermost known owner wins: a SHA-256 called
 * from the Redis store counts as hashing, a Buffer copy inside ioredis as Redis
 * client). Node's HTTP modules serve both sides, so for them the nearest frame that
 * says which side (the server's `_http_server`/Koa, or the upstream's
 * `_http_client`/HttpUpstream) decides. Idle samples are left out.
 *
 * Usage: node dist/bench/profileBreakdown.js <file.cpuprofile> <requests served by that process>
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

type Rule = [category: string, test: (fn: string, url: string) => boolean];
const has =
  (...parts: string[]) =>
  (_fn: string, url: string) =>
    parts.some((p) => url.includes(p));

/** Innermost-wins rules: what a sampled frame (or its nearest known caller) is doing. */
export const RULES: Rule[] = [
  ['GC', (fn) => fn === '(garbage collector)'],
  ['RSA verify (crypto.verify)', has('internal/crypto/sig')],
  ['hashes, HMAC, HKDF, AES-GCM', has('internal/crypto/hash', 'internal/crypto/cipher', 'internal/crypto/random', 'internal/crypto/keys', 'tokenHashes')],
  ['token header parse + decode', has('credentials.js', 'authScheme', '/protocol/dist/', 'base64')],
  ['JSON parse + validation + canonical JSON', (fn, url) => url.includes('chatRequest') || url.includes('/zod/') || ((fn === 'parse' || fn === 'stringify') && url === '')],
  ['Redis client (ioredis + store)', has('ioredis', 'redis-parser', 'redisStore', 'denque', 'cluster-key-slot', 'standard-as-callback')],
  ['moderation (local rules)', has('/moderation/')],
  ['metrics + logging', has('prom-client', 'pino', 'metrics.js', 'tdigest', 'bintrees')],
  ['upstream forward (HTTP client)', has('/upstream/', '_http_client', '_http_agent')],
  ['HTTP server + Koa (parse, route, respond)', has('_http_server', '/koa', 'koa-', '@koa', 'bodyReader', 'on-finished', 'statuses', 'content-type', 'mime-types', 'vary', 'cache-content-type', 'delegates', 'path-to-regexp', 'chatCompletions', 'module.js', 'redemptionServer', 'redemptionPassthroughServer')],
  ['socket I/O, streams, events (either side)', has('node:net', 'internal/stream_base_commons', 'internal/streams', 'node:events', 'node:stream', '_http_common', '_http_incoming', '_http_outgoing', 'internal/timers', 'node:timers')],
  ['promises + microtasks', (fn, url) => url.includes('internal/process/task_queues') || fn === 'processTicksAndRejections' || fn === 'runMicrotasks'],
];

export interface Breakdown {
  totalUs: number;
  byCategory: Map<string, number>;
  topSelf: [string, number][];
}

export function breakdown(profile: CpuProfile): Breakdown {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const categoryOf = new Map<number, string>();
  const classify = (id: number): string => {
    const cached = categoryOf.get(id);
    if (cached) return cached;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const { functionName: fn, url } = byId.get(cur)!.callFrame;
      for (const [cat, test] of RULES) {
        if (test(fn, url)) {
          categoryOf.set(id, cat);
          return cat;
        }
      }
    }
    const n = byId.get(id)!.callFrame.functionName;
    const cat = n === '(program)' ? 'native, not attributed to JS ((program))' : 'other JS';
    categoryOf.set(id, cat);
    return cat;
  };
  const byCategory = new Map<string, number>();
  const self = new Map<string, number>();
  let totalUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') continue;
    totalUs += dt;
    const cat = classify(id);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + dt);
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, '')}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  return { totalUs, byCategory, topSelf: [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, reqs] = process.argv.slice(2);
  if (!file || !reqs) throw new Error('usage: profileBreakdown <file.cpuprofile> <requests>');
  const n = Number(reqs);
  const b = breakdown(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  console.log(`main thread busy ${(b.totalUs / 1000).toFixed(0)} ms over ${n} requests: ${(b.totalUs / n).toFixed(1)} µs per request`);
  for (const [cat, us] of [...b.byCategory.entries()].sort((a, c) => c[1] - a[1])) console.log(`  ${(us / n).toFixed(1).padStart(7)} µs  ${((100 * us) / b.totalUs).toFixed(1).padStart(5)} %  ${cat}`);
  console.log('top self time:');
  for (const [k, us] of b.topSelf) console.log(`  ${(us / n).toFixed(1).padStart(7)} µs  ${k}`);
}

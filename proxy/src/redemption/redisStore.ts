/**
 * Redis implementation of the redemption store. Every decision that must be
 * atomic across pods is one Lua script; all keys share one hash tag (the
 * prefix), so the scripts are valid on a cluster too (at the price of keeping
 * redemption state on one shard).
 */
import type { Cluster, Redis } from 'ioredis';
import type { BlacklistEntry, BlacklistKind, ClaimRequest, ClaimResult, RedemptionStore } from './store.js';

/**
 * KEYS: cache, blacklist-permanent, blacklist-transient, rate-limit bucket, spent…
 * ARGV: binding, now, leaseMs, rlLimit (0 = off), rlWindowMs, expiresAt…
 */
const CLAIM = `
local binding = ARGV[1]
local now = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return {'blacklisted'} end
local state = nil
local wait = 0
for i = 5, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    local s, b, lease = string.match(v, '^(%a)|(%x+)|?(%d*)$')
    if b ~= binding then return {'conflict'} end
    if s == 'd' then
      state = 'd'
    elseif s == 'p' and state ~= 'd' then
      local untilMs = tonumber(lease) or 0
      if untilMs > now then state = 'p'; wait = untilMs - now end
    end
  end
end
if state == 'd' then
  local c = redis.call('GET', KEYS[1])
  if c then return {'done', c} end
  return {'done'}
end
if state == 'p' then return {'in_progress', tostring(wait)} end
local limit = tonumber(ARGV[4])
if limit > 0 then
  local n = redis.call('INCR', KEYS[4])
  if n == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[5]) end
  if n > limit then return {'rate_limited', tostring(redis.call('PTTL', KEYS[4]))} end
end
local val = 'p|' .. binding .. '|' .. ARGV[3]
for i = 5, #KEYS do
  local ttl = tonumber(ARGV[i + 1]) - now
  if ttl < 1 then ttl = 1 end
  redis.call('SET', KEYS[i], val, 'PX', ttl)
end
return {'claimed'}
`;

/** KEYS: cache, spent…  ARGV: binding, cached blob ('' = none), cache TTL ms */
const FINISH = `
local prefix = 'p|' .. ARGV[1] .. '|'
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if not v or string.sub(v, 1, #prefix) ~= prefix then return 0 end
end
for i = 2, #KEYS do redis.call('SET', KEYS[i], 'd|' .. ARGV[1], 'KEEPTTL') end
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
`;

/** KEYS: spent…  ARGV: binding, mode ('r' | 'free') */
const RELEASE = `
local prefix = 'p|' .. ARGV[1] .. '|'
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v and string.sub(v, 1, #prefix) == prefix then
    if ARGV[2] == 'free' then redis.call('DEL', KEYS[i]) else redis.call('SET', KEYS[i], 'r|' .. ARGV[1], 'KEEPTTL') end
  end
end
return 1
`;

type ScriptRedis = (Redis | Cluster) & {
  llmtorClaim(...args: (string | number)[]): Promise<unknown>;
  llmtorClaimBuffer(...args: (string | number)[]): Promise<Buffer[]>;
  llmtorFinish(...args: (string | number)[]): Promise<unknown>;
  llmtorRelease(...args: (string | number)[]): Promise<unknown>;
};

const TIMED_OUT = 'redis command timed out';

export class RedisRedemptionStore implements RedemptionStore {
  private readonly r: ScriptRedis;
  /** The socket corked for this turn of the event loop (see coalesce()). */
  private corked: { uncork(): void } | undefined;
  private readonly uncork = (): void => {
    const s = this.corked;
    this.corked = undefined;
    s?.uncork();
  };
  constructor(
    redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly timeoutMs: number,
  ) {
    this.r = redis as ScriptRedis;
    if (typeof this.r.llmtorClaim !== 'function') {
      redis.defineCommand('llmtorClaim', { lua: CLAIM });
      redis.defineCommand('llmtorFinish', { lua: FINISH });
      redis.defineCommand('llmtorRelease', { lua: RELEASE });
    }
  }

  healthy(): boolean {
    return this.r.status === 'ready';
  }

  /** A command that does not answer in time fails the request closed (503) instead of hanging it. */
  private deadline<T>(p: Promise<T>): Promise<T> {
    // One timer and one promise per command (no Promise.race / finally chain: this is on every request).
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(TIMED_OUT)), this.timeoutMs);
      p.then(
        (v) => {
          clearTimeout(t);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  /**
   * Write coalescing: the hot-path scripts issued during one turn of the event
   * loop (many concurrent requests) leave in one write to the Redis socket
   * instead of one syscall each; the socket is uncorked at the end of the turn
   * (setImmediate), so a lone command waits only for the I/O callbacks already
   * queued. Replies come back batched the same way. Nothing about the order or
   * atomicity of the commands changes (each is still one EVALSHA, answered
   * before the caller goes on). Not on a Cluster (no single socket).
   */
  private coalesce(): void {
    if (this.corked) return;
    const stream = (this.r as Partial<Redis>).stream;
    if (!stream || this.r.status !== 'ready' || !stream.writable) return;
    stream.cork();
    this.corked = stream;
    setImmediate(this.uncork);
  }

  private spentKey(id: string): string {
    return `${this.prefix}s:${id}`;
  }
  private cacheKey(binding: string): string {
    return `${this.prefix}c:${binding}`;
  }
  private blKey(kind: BlacklistKind, p: string): string {
    return `${this.prefix}bl:${kind === 'permanent' ? 'p' : 't'}:${p}`;
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const { spentIds, binding, now } = req;
    const keys = [
      this.cacheKey(binding),
      req.pseudonym ? this.blKey('permanent', req.pseudonym.permanent) : `${this.prefix}bl:none`,
      req.pseudonym ? this.blKey('transient', req.pseudonym.transient) : `${this.prefix}bl:none`,
      req.pseudonym && req.rateLimit ? `${this.prefix}rl:${req.pseudonym.permanent}:${Math.floor(now / req.rateLimit.windowMs)}` : `${this.prefix}rl:none`,
      ...spentIds.map((id) => this.spentKey(id)),
    ];
    const limit = req.pseudonym && req.rateLimit ? req.rateLimit.limit : 0;
    const args = [binding, now, now + req.leaseMs, limit, req.rateLimit?.windowMs ?? 1, ...req.expiresAt];
    this.coalesce();
    // The Buffer variant: replies are decoded by hand (a cached answer is base64 of ciphertext).
    const res = await this.deadline(this.r.llmtorClaimBuffer(keys.length, ...keys, ...args));
    return decodeClaim(res);
  }

  async finish(spentIds: string[], binding: string, cached: Buffer | undefined, cacheTtlMs: number): Promise<boolean> {
    const keys = [this.cacheKey(binding), ...spentIds.map((id) => this.spentKey(id))];
    this.coalesce();
    // base64 text, not a Buffer argument: with a Buffer ioredis writes every argument to the socket
    // separately (one syscall each), which cost more than the 33 % size.
    const r = await this.deadline(this.r.llmtorFinish(keys.length, ...keys, binding, cached ? cached.toString('base64') : '', Math.max(1, cacheTtlMs)));
    return r === 1;
  }

  async release(spentIds: string[], binding: string, mode: 'retryable' | 'free'): Promise<void> {
    const keys = spentIds.map((id) => this.spentKey(id));
    this.coalesce();
    await this.deadline(this.r.llmtorRelease(keys.length, ...keys, binding, mode === 'free' ? 'free' : 'r'));
  }

  async blacklistAdd(e: BlacklistEntry): Promise<void> {
    const k = this.blKey(e.kind, e.pseudonym);
    if (e.expiresAt !== undefined) await this.deadline(this.r.set(k, '1', 'PXAT', e.expiresAt));
    else await this.deadline(this.r.set(k, '1'));
  }

  async blacklistRemove(kind: BlacklistKind, pseudonym: string): Promise<boolean> {
    return (await this.deadline(this.r.del(this.blKey(kind, pseudonym)))) > 0;
  }

  async blacklistList(): Promise<BlacklistEntry[]> {
    const out: BlacklistEntry[] = [];
    // SCAN is per node: on a Cluster a plain client sends it to one random master, so scan every master.
    const r = this.r as Partial<Cluster>;
    const nodes: Redis[] = typeof r.nodes === 'function' ? r.nodes('master') : [this.r as Redis];
    for (const redis of nodes) await this.scanBlacklist(redis, out);
    return out;
  }

  private async scanBlacklist(redis: Redis, out: BlacklistEntry[]): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.deadline(redis.scan(cursor, 'MATCH', `${this.prefix}bl:*`, 'COUNT', 500));
      cursor = next;
      for (const k of keys) {
        const m = /bl:([pt]):([0-9a-f]{64})$/.exec(k);
        if (!m) continue;
        const pttl = await this.deadline(redis.pttl(k));
        const e: BlacklistEntry = { kind: m[1] === 'p' ? 'permanent' : 'transient', pseudonym: m[2]! };
        if (pttl > 0) e.expiresAt = Date.now() + pttl;
        out.push(e);
      }
    } while (cursor !== '0');
  }

  async flag(permanent: string, ttlMs: number): Promise<number> {
    const k = `${this.prefix}flags`;
    const n = await this.deadline(this.r.zincrby(k, 1, permanent));
    await this.deadline(this.r.pexpire(k, ttlMs));
    return Number(n);
  }

  async flagged(limit: number): Promise<{ pseudonym: string; flags: number }[]> {
    const r = await this.deadline(this.r.zrevrange(`${this.prefix}flags`, 0, limit - 1, 'WITHSCORES'));
    const out: { pseudonym: string; flags: number }[] = [];
    for (let i = 0; i + 1 < r.length; i += 2) out.push({ pseudonym: r[i]!, flags: Number(r[i + 1]) });
    return out;
  }
}

function decodeClaim(res: Buffer[]): ClaimResult {
  const kind = res[0]?.toString('latin1') ?? '';
  switch (kind) {
    case 'claimed':
      return { kind: 'claimed' };
    case 'done':
      return res[1] === undefined ? { kind: 'done' } : { kind: 'done', cached: Buffer.from(res[1].toString('latin1'), 'base64') };
    case 'in_progress':
      return { kind: 'in_progress', retryAfterMs: Number(res[1]?.toString('latin1')) };
    case 'conflict':
      return { kind: 'conflict' };
    case 'blacklisted':
      return { kind: 'blacklisted' };
    case 'rate_limited':
      return { kind: 'rate_limited', retryAfterMs: Math.max(0, Number(res[1]?.toString('latin1'))) };
    default:
      throw new Error(`unexpected claim result ${kind}`);
  }
}

/**
 * Redis implementation of the redemption store. Every decision that must be
 * atomic across pods is one Lua script; all keys share one hash tag (the
 * prefix), so the scripts are valid on a cluster too (at the price of keeping
 * redemption state on one shard).
 */
import type { Cluster, Redis } from 'ioredis';
import { ClaimNotApplied, type BlacklistEntry, type BlacklistKind, type ClaimRequest, type ClaimResult, type RedemptionStore } from './store.js';

/**
 * KEYS: cache, blacklist-permanent, blacklist-transient, rate-limit bucket, spent…
 * ARGV: binding, now, leaseUntil, rlLimit (0 = off), rlWindowMs, deadline (Redis clock, ms), expiresAt…
 *
 * A claim that reaches Redis after its deadline does nothing: by then the pod has told the
 * client "503, nothing was spent" (the command timed out), and a claim taking effect later
 * (Redis stalled, or ioredis resending it after a reconnect) would make that a lie. Every
 * reply starts with Redis's own time, from which the pod keeps its clock offset.
 */
const CLAIM = `
local t = redis.call('TIME')
local rnow = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if rnow > tonumber(ARGV[6]) then return {'expired', tostring(rnow)} end
local function reply(r)
  table.insert(r, 2, tostring(rnow))
  return r
end
local binding = ARGV[1]
local now = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return reply({'blacklisted'}) end
local state = nil
local wait = 0
for i = 5, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v then
    local s, b, lease = string.match(v, '^(%a)|(%x+)|?(%d*)$')
    if b ~= binding then return reply({'conflict'}) end
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
  if c then return reply({'done', c}) end
  return reply({'done'})
end
if state == 'p' then return reply({'in_progress', tostring(wait)}) end
local limit = tonumber(ARGV[4])
if limit > 0 then
  local n = redis.call('INCR', KEYS[4])
  if n == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[5]) end
  if n > limit then return reply({'rate_limited', tostring(redis.call('PTTL', KEYS[4]))}) end
end
local val = 'p|' .. binding .. '|' .. ARGV[3]
for i = 5, #KEYS do
  local ttl = tonumber(ARGV[i + 2]) - now
  if ttl < 1 then ttl = 1 end
  redis.call('SET', KEYS[i], val, 'PX', ttl)
end
return reply({'claimed'})
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

/** Redis's clock, on the node that holds the redemption keys (KEYS[1]: any key of the prefix's slot). */
const TIME = `
local t = redis.call('TIME')
return tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
`;

type ScriptRedis = (Redis | Cluster) & {
  llmtorTime(...args: (string | number)[]): Promise<unknown>;
  llmtorClaim(...args: (string | number)[]): Promise<unknown>;
  llmtorClaimBuffer(...args: (string | number)[]): Promise<Buffer[]>;
  llmtorFinish(...args: (string | number)[]): Promise<unknown>;
  llmtorRelease(...args: (string | number)[]): Promise<unknown>;
};

const TIMED_OUT = 'redis command timed out';

/**
 * How much earlier than the pod's own timeout a claim stops being valid in Redis: the time a
 * reply written by Redis just before the deadline may take to reach this process.
 */
const CLAIM_DEADLINE_MARGIN_MS = 50;
/**
 * The offset is the best (highest) sample of the current and the previous window of this length:
 * a sample taken while this process was busy is low (the reply waited), and must not displace a
 * good one; an old good one still ages out (clocks drift a little; a failover reconnects and resets).
 */
const OFFSET_WINDOW_MS = 5_000;


export class RedisRedemptionStore implements RedemptionStore {
  private readonly r: ScriptRedis;
  /** The socket corked for this turn of the event loop (see coalesce()). */
  private corked: { uncork(): void } | undefined;
  private readonly uncork = (): void => {
    const s = this.corked;
    this.corked = undefined;
    s?.uncork();
  };
  /**
   * A lower bound of (Redis clock − this process's clock), in ms: Redis time T seen in a reply
   * received at local time r was read at some local time ≤ r, so the offset is ≥ T − r. A
   * claim's deadline in Redis time is this + the local moment the pod will give up, so it can
   * only be early (by the round trip of the sample), never late. Reset on every (re)connect.
   */
  private offsetMs: number | undefined;
  private offsetWindow = 0;
  private offsetBest = Number.NEGATIVE_INFINITY;
  private offsetPrevBest = Number.NEGATIVE_INFINITY;
  private offsetProbe: Promise<void> | undefined;
  /** The next WAIT, shared by every claim answered before it is sent (see confirm()). */
  private nextWait: Promise<number> | undefined;
  constructor(
    redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly timeoutMs: number,
    /** Claims must reach this many replicas (WAIT) before anything is forwarded; 0 = do not wait. */
    private readonly durability: { replicas: number; timeoutMs: number } = { replicas: 0, timeoutMs: 0 },
  ) {
    this.r = redis as ScriptRedis;
    redis.on('ready', () => {
      this.offsetMs = undefined;
      this.offsetBest = this.offsetPrevBest = Number.NEGATIVE_INFINITY;
    });
    if (typeof this.r.llmtorClaim !== 'function') {
      redis.defineCommand('llmtorTime', { lua: TIME, numberOfKeys: 1 });
      redis.defineCommand('llmtorClaim', { lua: CLAIM });
      redis.defineCommand('llmtorFinish', { lua: FINISH });
      redis.defineCommand('llmtorRelease', { lua: RELEASE });
    }
  }

  healthy(): boolean {
    return this.r.status === 'ready';
  }

  /** A command that does not answer in time fails the request closed (503) instead of hanging it. */
  private deadline<T>(p: Promise<T>, ms = this.timeoutMs): Promise<T> {
    // One timer and one promise per command (no Promise.race / finally chain: this is on every request).
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void): void => {
        if (settled) return;
        settled = true;
        f();
      };
      // Timers run before the event loop reads sockets: after a busy spell the reply may already be
      // waiting. setImmediate runs after that read, so a reply that came in time is never thrown away.
      const t = setTimeout(() => setImmediate(() => settle(() => reject(new Error(TIMED_OUT)))), ms);
      p.then(
        (v) => {
          clearTimeout(t);
          settle(() => resolve(v));
        },
        (e: unknown) => {
          clearTimeout(t);
          settle(() => reject(e instanceof Error ? e : new Error(String(e))));
        },
      );
    });
  }

  private sampleOffset(redisMs: number, receivedAt: number): void {
    const c = redisMs - receivedAt;
    if (!Number.isFinite(c)) return;
    const w = Math.floor(receivedAt / OFFSET_WINDOW_MS);
    if (w !== this.offsetWindow) {
      this.offsetPrevBest = w === this.offsetWindow + 1 ? this.offsetBest : Number.NEGATIVE_INFINITY;
      this.offsetBest = Number.NEGATIVE_INFINITY;
      this.offsetWindow = w;
    }
    if (c > this.offsetBest) this.offsetBest = c;
    this.offsetMs = Math.max(this.offsetBest, this.offsetPrevBest);
  }

  /** The offset, read from Redis once after each (re)connect (one round trip, shared by concurrent claims). */
  private async offset(): Promise<number> {
    if (this.offsetMs !== undefined) return this.offsetMs;
    this.offsetProbe ??= this.deadline(this.r.llmtorTime(this.cacheKey('clock')))
      .then((v) => this.sampleOffset(Number(v), Date.now()))
      .finally(() => {
        this.offsetProbe = undefined;
      });
    await this.offsetProbe;
    if (this.offsetMs === undefined) throw new Error('no clock offset');
    return this.offsetMs;
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
    let res: Buffer[];
    try {
      res = await this.sendClaim(req);
    } catch (e) {
      // Timed out: the script refuses to run past its deadline, which lies before this timeout.
      if ((e as Error).message === TIMED_OUT) throw new ClaimNotApplied('spent-token store timed out; the claim cannot take effect any more');
      throw e;
    }
    this.sampleOffset(Number(res[1]?.toString('latin1')), Date.now());
    const out = decodeClaim(res);
    if (out.kind !== 'claimed' || this.durability.replicas === 0) return out;
    let acked = 0;
    try {
      acked = await this.confirm();
    } catch {
      // Unknown: treated as not confirmed.
    }
    if (acked >= this.durability.replicas) return out;
    // Nothing was forwarded, so undoing the claim is safe. The undo must be as durable as the claim
    // may have been (its ack may only have been late): else a failover could bring the claim back.
    try {
      await this.release(req.spentIds, req.binding, 'free');
      return { kind: 'unconfirmed', released: (await this.confirm()) >= this.durability.replicas };
    } catch {
      return { kind: 'unconfirmed', released: false };
    }
  }

  /**
   * WAIT for the replicas, on the connection that sent the claims (WAIT covers the writes of its
   * own connection; on a Cluster, the node that holds the redemption slot). One WAIT serves every
   * claim answered before it leaves, so concurrent requests share a round trip. WAIT blocks that
   * connection until the replicas answer or its timeout, so the command deadline allows for it.
   */
  private confirm(): Promise<number> {
    this.nextWait ??= new Promise<number>((resolve, reject) => {
      setImmediate(() => {
        this.nextWait = undefined;
        const { replicas, timeoutMs } = this.durability;
        const node = this.slotNode();
        this.deadline(node.wait(replicas, timeoutMs), timeoutMs + this.timeoutMs).then((n) => resolve(Number(n)), reject);
      });
    });
    return this.nextWait;
  }

  /** The connection of the node holding the redemption keys' slot. */
  private slotNode(): Redis {
    const c = this.r as Partial<Cluster>;
    if (typeof c.nodes !== 'function' || !c.slots) return this.r as Redis;
    const key = c.slots[hashSlot(this.prefix)]?.[0];
    return c.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === key) ?? (this.r as unknown as Redis);
  }

  private async sendClaim(req: ClaimRequest): Promise<Buffer[]> {
    const { spentIds, binding, now } = req;
    const keys = [
      this.cacheKey(binding),
      req.pseudonym ? this.blKey('permanent', req.pseudonym.permanent) : `${this.prefix}bl:none`,
      req.pseudonym ? this.blKey('transient', req.pseudonym.transient) : `${this.prefix}bl:none`,
      req.pseudonym && req.rateLimit ? `${this.prefix}rl:${req.pseudonym.permanent}:${Math.floor(now / req.rateLimit.windowMs)}` : `${this.prefix}rl:none`,
      ...spentIds.map((id) => this.spentKey(id)),
    ];
    const limit = req.pseudonym && req.rateLimit ? req.rateLimit.limit : 0;
    const offset = this.offsetMs ?? (await this.offset());
    // The local timer below starts now; in Redis time the claim must have run a margin before it fires.
    const sentAt = Date.now();
    const deadline = sentAt + offset + this.timeoutMs - Math.min(CLAIM_DEADLINE_MARGIN_MS, this.timeoutMs / 4);
    const args = [binding, now, now + req.leaseMs, limit, req.rateLimit?.windowMs ?? 1, Math.floor(deadline), ...req.expiresAt];
    this.coalesce();
    // The Buffer variant: replies are decoded by hand (a cached answer is base64 of ciphertext).
    return this.deadline(this.r.llmtorClaimBuffer(keys.length, ...keys, ...args));
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

/** Reply: kind, Redis time, then the kind's values. */
function decodeClaim(res: Buffer[]): ClaimResult {
  const kind = res[0]?.toString('latin1') ?? '';
  const v = res[2];
  switch (kind) {
    case 'expired':
      throw new ClaimNotApplied('the claim reached the spent-token store after its deadline and was not applied');
    case 'claimed':
      return { kind: 'claimed' };
    case 'done':
      return v === undefined ? { kind: 'done' } : { kind: 'done', cached: Buffer.from(v.toString('latin1'), 'base64') };
    case 'in_progress':
      return { kind: 'in_progress', retryAfterMs: Number(v?.toString('latin1')) };
    case 'conflict':
      return { kind: 'conflict' };
    case 'blacklisted':
      return { kind: 'blacklisted' };
    case 'rate_limited':
      return { kind: 'rate_limited', retryAfterMs: Math.max(0, Number(v?.toString('latin1'))) };
    default:
      throw new Error(`unexpected claim result ${kind}`);
  }
}

/** Redis Cluster hash slot of a key (CRC16/XMODEM of its hash tag, mod 16384). */
export function hashSlot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const tag = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const b of Buffer.from(tag, 'utf8')) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/**
 * Redis implementation of the redemption store, shaped to shard on a Redis Cluster:
 *
 *   spent buckets  <prefix>s:{<first hex digits of SHA-256(token)>}:<expiry day>   hash
 *                  field = the next 8 bytes of the hash, value = state (below)
 *   retry cache    <prefix>c:{<binding>}                                           string
 *   blacklist      <prefix>bl:p:{<permanent>} / <prefix>bl:t:{<transient>}           string
 *   rate limit     <prefix>rl:{<permanent>}:<window>                                counter
 *
 * The hash tags put every token bucket, every pseudonym and every cached answer on a slot of its
 * own, so the spent set spreads over all masters. On a Cluster a request's tokens are claimed
 * bucket by bucket (one Lua script per bucket, atomic there) in a fixed order (sorted key),
 * releasing the buckets already claimed when a later one refuses: all-or-nothing for the client. A
 * pod that dies between two buckets leaves "in progress" entries with a lease, which only the same
 * request can take over. Anywhere else (one server, Sentinel) every key is on one node: the whole
 * claim, the finish and the release are one script each, one round trip (redisScripts.ts).
 *
 * Compact entries (issue 13, 279 → 26–30 bytes a token measured): a bucket is a small hash (listpack encoded
 * while it has at most hash-max-listpack-entries fields), a field is 8 bytes, a value 9 bytes
 * ('d' + 8 bytes of the request binding) or a little more while in progress. All tokens of one
 * signing key share its redemption end, so a bucket per hash prefix and expiry day expires as a
 * whole at the end of that day. docs/benchmarks.md has the measurements and the collision risk
 * of the truncation.
 */
import { createHash, hash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { BIND_BYTES, defineScripts, FIELD_BYTES, requestScripts, type Args, type ScriptRedis } from './redisScripts.js';
import { ClaimNotApplied, type BlacklistEntry, type BlacklistKind, type ClaimRequest, type ClaimResult, type RedemptionStore } from './store.js';

const DAY_MS = 86_400_000;

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

/**
 * A lower bound of (one Redis node's clock − this process's clock), in ms: Redis time T seen in a
 * reply received at local time r was read at some local time ≤ r, so the offset is ≥ T − r. A
 * claim's deadline in Redis time is this + the local moment the pod will give up, so it can only
 * be early (by the round trip of the sample), never late. One per node (each has its own clock).
 */
class ClockOffset {
  value: number | undefined;
  probe: Promise<void> | undefined;
  private window = 0;
  private best = Number.NEGATIVE_INFINITY;
  private prevBest = Number.NEGATIVE_INFINITY;

  reset(): void {
    this.value = undefined;
    this.best = this.prevBest = Number.NEGATIVE_INFINITY;
  }

  sample(redisMs: number, receivedAt: number): void {
    const c = redisMs - receivedAt;
    if (!Number.isFinite(c)) return;
    const w = Math.floor(receivedAt / OFFSET_WINDOW_MS);
    if (w !== this.window) {
      this.prevBest = w === this.window + 1 ? this.best : Number.NEGATIVE_INFINITY;
      this.best = Number.NEGATIVE_INFINITY;
      this.window = w;
    }
    if (c > this.best) this.best = c;
    this.value = Math.max(this.best, this.prevBest);
  }
}

/** A request's tokens in one bucket. */
interface BucketPart {
  key: string;
  fields: Buffer[];
  expiresAt: number;
}

type BucketReply = { kind: 'claimed' } | { kind: 'free' } | { kind: 'done' } | { kind: 'conflict' } | { kind: 'in_progress'; retryAfterMs: number };

export interface SpentLayout {
  /**
   * Hex digits of SHA-256(token) that name a token's bucket (16^n buckets per expiry day). Size it
   * so a bucket stays within Redis's hash-max-listpack-entries (512 by default): 4 up to ~33 M
   * tokens per signing key, 5 up to ~500 M (docs/benchmarks.md).
   */
  bucketHexDigits: number;
  /**
   * Prefix of the spent entries of the previous shape (one key per token, `<prefix>s:<hex>`), still
   * looked at so that a token spent before an upgrade stays spent ('' = none). Drop it one
   * redemption window after the upgrade, when they have all expired.
   */
  legacyPrefix?: string;
}

export class RedisRedemptionStore implements RedemptionStore {
  private readonly r: ScriptRedis;
  /** Not a Cluster: every key on one node, so a request is one script (claimRequest()). */
  private readonly single: boolean;
  /** The socket corked for this turn of the event loop (see coalesce()). */
  private corked: { uncork(): void } | undefined;
  private readonly uncork = (): void => {
    const s = this.corked;
    this.corked = undefined;
    s?.uncork();
  };
  /** Per node ("host:port", or "" without a Cluster); reset on every (re)connect. */
  private readonly offsets = new Map<string, ClockOffset>();
  /** The next WAIT per node, shared by every claim answered before it is sent (see confirm()). */
  private readonly nextWait = new Map<Redis, Promise<number>>();
  private readonly digits: number;
  private readonly legacyPrefix: string;
  constructor(
    redis: Redis | Cluster,
    private readonly prefix: string,
    private readonly timeoutMs: number,
    /** Claims must reach this many replicas (WAIT) before anything is forwarded; 0 = do not wait. */
    private readonly durability: { replicas: number; timeoutMs: number } = { replicas: 0, timeoutMs: 0 },
    layout: SpentLayout = { bucketHexDigits: 4 },
  ) {
    this.r = defineScripts(redis);
    const c = redis as Partial<Cluster>;
    this.single = !(typeof c.nodes === 'function' && 'slots' in c);
    this.digits = layout.bucketHexDigits;
    this.legacyPrefix = layout.legacyPrefix ?? '';
    redis.on('ready', () => this.offsets.forEach((o) => o.reset()));
    redis.on('+node', () => this.offsets.forEach((o) => o.reset()));
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

  private clock(node: string): ClockOffset {
    let o = this.offsets.get(node);
    if (!o) this.offsets.set(node, (o = new ClockOffset()));
    return o;
  }

  /** The node's offset, read once after each (re)connect (one round trip, shared by concurrent claims). */
  private async offset(key: string, node: string): Promise<number> {
    const o = this.clock(node);
    if (o.value !== undefined) return o.value;
    o.probe ??= this.deadline(this.r.llmtorTime(key))
      .then((v) => o.sample(Number(v), Date.now()))
      .finally(() => {
        o.probe = undefined;
      });
    await o.probe;
    if (o.value === undefined) throw new Error('no clock offset');
    return o.value;
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

  /** The request's tokens grouped by bucket, buckets in a fixed order (two requests sharing tokens claim them in the same order). */
  private buckets(spentIds: string[], expiresAt: number[]): BucketPart[] {
    if (spentIds.length === 1) return [this.bucketOf(spentIds[0]!, expiresAt[0] ?? 0)];
    const byKey = new Map<string, BucketPart>();
    spentIds.forEach((id, i) => {
      const day = Math.ceil((expiresAt[i] ?? 0) / DAY_MS);
      const key = `${this.prefix}s:{${id.slice(0, this.digits)}}:${day}`;
      let b = byKey.get(key);
      if (!b) byKey.set(key, (b = { key, fields: [], expiresAt: day * DAY_MS }));
      b.fields.push(Buffer.from(id.slice(this.digits, this.digits + 2 * FIELD_BYTES), 'hex'));
    });
    return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
  }
  private bucketOf(id: string, expiresAt: number): BucketPart {
    const day = Math.ceil(expiresAt / DAY_MS);
    return { key: `${this.prefix}s:{${id.slice(0, this.digits)}}:${day}`, fields: [Buffer.from(id.slice(this.digits, this.digits + 2 * FIELD_BYTES), 'hex')], expiresAt: day * DAY_MS };
  }
  /** A bucket's key from a spent id (for tests and tools): where its entry lives. */
  spentLocation(id: string, expiresAt: number): { key: string; field: Buffer } {
    const b = this.buckets([id], [expiresAt])[0]!;
    return { key: b.key, field: b.fields[0]! };
  }
  private cacheKey(binding: string): string {
    return `${this.prefix}c:{${binding}}`;
  }
  private blKey(kind: BlacklistKind, p: string): string {
    return `${this.prefix}bl:${kind === 'permanent' ? 'p' : 't'}:{${p}}`;
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    const bind = bindingBytes(req.binding);
    if (this.single) return this.claimRequest(req, bind);
    this.coalesce();
    // A token spent before the upgrade to buckets is refused (its answer is not replayed); looked up
    // alongside step 1, not after it.
    const legacy = this.legacyPrefix
      ? this.deadline(Promise.all(req.spentIds.map((id) => this.r.exists(`${this.legacyPrefix}s:${id}`)))).then(
          (xs) => xs.reduce((a, b) => a + b, 0),
          (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
        )
      : undefined;
    // 1. The pseudonym's slot: blacklists and the rate-limit count. Nothing is spent yet, so any
    // failure here is "nothing was spent".
    let limited: number | undefined;
    let counted = false;
    let rlKey = '';
    if (req.pseudonym) {
      rlKey = `${this.prefix}rl:{${req.pseudonym.permanent}}:${req.rateLimit ? Math.floor(req.now / req.rateLimit.windowMs) : 0}`;
      const limit = req.rateLimit?.limit ?? 0;
      let p: string[];
      let transientBlocked: number;
      try {
        this.coalesce();
        [p, transientBlocked] = await Promise.all([
          this.deadline(this.r.llmtorPseudonym(this.blKey('permanent', req.pseudonym.permanent), rlKey, limit, req.rateLimit?.windowMs ?? 1)),
          this.deadline(this.r.exists(this.blKey('transient', req.pseudonym.transient))),
        ]);
      } catch (e) {
        throw new ClaimNotApplied(`spent-token store unavailable before any token was claimed (${(e as Error).message})`);
      }
      if (p[0] === 'blacklisted' || transientBlocked === 1) return { kind: 'blacklisted' };
      counted = p[0] !== 'ok';
      if (p[0] === 'rate_limited') limited = Math.max(0, Number(p[1]));
    }
    const uncount = (): void => {
      if (counted) this.deadline(this.r.decr(rlKey)).catch(() => undefined);
    };

    if (legacy) {
      const n = await legacy;
      if (n instanceof Error) {
        uncount();
        throw new ClaimNotApplied(`spent-token store unavailable before any token was claimed (${n.message})`);
      }
      if (n > 0) {
        uncount();
        return { kind: 'conflict' };
      }
    }

    // 2. The tokens, bucket by bucket in a fixed order. Rate limited: only look (a replay is still served).
    const parts = this.buckets(req.spentIds, req.expiresAt);
    const claimed: BucketPart[] = [];
    for (const part of parts) {
      let reply: BucketReply;
      try {
        reply = await this.claimBucket(part, bind, req, limited !== undefined);
      } catch (e) {
        uncount();
        // Buckets claimed before this one are ours to undo; this one did not (ClaimNotApplied) or may have run.
        const undone = await this.releaseParts(claimed, bind, 'free').then(
          () => true,
          () => false,
        );
        if (e instanceof ClaimNotApplied && undone) throw e;
        throw e instanceof ClaimNotApplied ? new Error('a claim timed out and the claims before it could not be undone') : e;
      }
      if (reply.kind === 'claimed') {
        claimed.push(part);
        continue;
      }
      if (reply.kind === 'free') continue;
      // Refused: all-or-nothing, so the buckets claimed before this one are released.
      uncount();
      // If that fails, the error says the state is unknown (not "nothing spent").
      if (claimed.length > 0) await this.releaseParts(claimed, bind, 'free');
      if (reply.kind === 'done') return this.done(req.binding);
      return reply;
    }
    if (limited !== undefined) return { kind: 'rate_limited', retryAfterMs: limited };
    if (this.durability.replicas === 0) return { kind: 'claimed' };

    // 3. Durable: every node a claim landed on confirms it on enough replicas.
    if ((await this.confirmAll(claimed)) >= this.durability.replicas) return { kind: 'claimed' };
    // Nothing was forwarded, so undoing the claim is safe. The undo must be as durable as the claim
    // may have been (its ack may only have been late): else a failover could bring the claim back.
    try {
      await this.releaseParts(claimed, bind, 'free');
      return { kind: 'unconfirmed', released: (await this.confirmAll(claimed)) >= this.durability.replicas };
    } catch {
      return { kind: 'unconfirmed', released: false };
    }
  }

  /** The claim deadline in Redis time for a command sent now to `node` (its clock offset read first if unknown). */
  private async claimDeadline(node: string, key: string): Promise<number> {
    return this.deadlineAt(this.clock(node).value ?? (await this.offset(key, node)));
  }
  private deadlineAt(offset: number): number {
    // The local timer of the command starts now; in Redis time the claim must have run a margin before it fires.
    return Math.floor(Date.now() + offset + this.timeoutMs - Math.min(CLAIM_DEADLINE_MARGIN_MS, this.timeoutMs / 4));
  }

  /** One node: blacklist, rate limit, legacy look-up and every bucket in one script (CLAIM_REQUEST). */
  private async claimRequest(req: ClaimRequest, bind: Buffer): Promise<ClaimResult> {
    const cacheKey = this.cacheKey(req.binding);
    const o = this.clock('');
    // No await once the offset is known (every claim but the first after a connect).
    const deadline = o.value !== undefined ? this.deadlineAt(o.value) : await this.claimDeadline('', cacheKey);
    const parts = this.buckets(req.spentIds, req.expiresAt);
    const p = req.pseudonym;
    const legacy = this.legacyPrefix ? req.spentIds.map((id) => `${this.legacyPrefix}s:${id}`) : [];
    const args: Args = [4 + legacy.length + parts.length, cacheKey];
    if (p) {
      const window = req.rateLimit ? Math.floor(req.now / req.rateLimit.windowMs) : 0;
      args.push(this.blKey('permanent', p.permanent), this.blKey('transient', p.transient), `${this.prefix}rl:{${p.permanent}}:${window}`);
    } else args.push(cacheKey, cacheKey, cacheKey); // Not read without a pseudonym.
    for (const k of legacy) args.push(k);
    for (const part of parts) args.push(part.key);
    args.push(deadline, bind, req.now, req.now + req.leaseMs, p ? (req.rateLimit?.limit ?? 0) : 0, req.rateLimit?.windowMs ?? 1, p ? '1' : '0', legacy.length);
    for (const part of parts) args.push(part.expiresAt, part.fields.length, ...part.fields);
    this.coalesce();
    let res: string[];
    try {
      res = await (this.deadline(requestScripts.claim.run(this.r as Redis, args)) as Promise<string[]>);
    } catch (e) {
      const m = (e as Error).message;
      // Timed out: the script refuses to run past its deadline, which lies before this timeout.
      if (m === TIMED_OUT) throw new ClaimNotApplied('spent-token store timed out; the claim cannot take effect any more');
      // Refused by ioredis before anything was written to the socket.
      if (m.startsWith("Stream isn't writeable")) throw new ClaimNotApplied(`spent-token store unavailable before any token was claimed (${m})`);
      throw e;
    }
    o.sample(Number(res[1]), Date.now());
    switch (res[0]) {
      case 'expired':
        throw new ClaimNotApplied('the claim reached the spent-token store after its deadline and was not applied');
      case 'blacklisted':
        return { kind: 'blacklisted' };
      case 'conflict':
        return { kind: 'conflict' };
      case 'done':
        return res[2] ? { kind: 'done', cached: Buffer.from(res[2], 'base64') } : { kind: 'done' };
      case 'in_progress':
        return { kind: 'in_progress', retryAfterMs: Number(res[2]) };
      case 'rate_limited':
        return { kind: 'rate_limited', retryAfterMs: Math.max(0, Number(res[2])) };
      case 'claimed':
        break;
      default:
        throw new Error(`unexpected claim result ${res[0]}`);
    }
    if (this.durability.replicas === 0) return { kind: 'claimed' };
    const node = this.r as Redis;
    // Durable: as in claim(), undone (as durably as it was made) when the replicas do not confirm it.
    if ((await this.confirm(node).catch(() => 0)) >= this.durability.replicas) return { kind: 'claimed' };
    try {
      await this.releaseRequest(parts, bind, 'free');
      return { kind: 'unconfirmed', released: (await this.confirm(node).catch(() => 0)) >= this.durability.replicas };
    } catch {
      return { kind: 'unconfirmed', released: false };
    }
  }

  private releaseRequest(parts: BucketPart[], bind: Buffer, mode: 'r' | 'free'): Promise<unknown> {
    const args: Args = [parts.length];
    for (const part of parts) args.push(part.key);
    args.push(bind, mode);
    for (const part of parts) args.push(part.fields.length, ...part.fields);
    this.coalesce();
    return this.deadline(requestScripts.release.run(this.r as Redis, args));
  }

  private async done(binding: string): Promise<ClaimResult> {
    const c = await this.deadline(this.r.get(this.cacheKey(binding)));
    return c ? { kind: 'done', cached: Buffer.from(c, 'base64') } : { kind: 'done' };
  }

  private async claimBucket(part: BucketPart, bind: Buffer, req: ClaimRequest, checkOnly: boolean): Promise<BucketReply> {
    const node = this.nodeName(part.key);
    const o = this.clock(node);
    const deadline = await this.claimDeadline(node, part.key);
    this.coalesce();
    let res: string[];
    try {
      res = await this.deadline(this.r.llmtorClaimBucket(part.key, deadline, bind, req.now, req.now + req.leaseMs, part.expiresAt, checkOnly ? '1' : '0', ...part.fields));
    } catch (e) {
      // Timed out: the script refuses to run past its deadline, which lies before this timeout.
      if ((e as Error).message === TIMED_OUT) throw new ClaimNotApplied('spent-token store timed out; the claim cannot take effect any more');
      throw e;
    }
    o.sample(Number(res[1]), Date.now());
    switch (res[0]) {
      case 'expired':
        throw new ClaimNotApplied('the claim reached the spent-token store after its deadline and was not applied');
      case 'claimed':
        return { kind: 'claimed' };
      case 'free':
        return { kind: 'free' };
      case 'done':
        return { kind: 'done' };
      case 'conflict':
        return { kind: 'conflict' };
      case 'in_progress':
        return { kind: 'in_progress', retryAfterMs: Number(res[2]) };
      default:
        throw new Error(`unexpected claim result ${res[0]}`);
    }
  }

  private async releaseParts(parts: BucketPart[], bind: Buffer, mode: 'r' | 'free'): Promise<void> {
    this.coalesce();
    await Promise.all(parts.map((p) => this.deadline(this.r.llmtorReleaseBucket(p.key, bind, mode, ...p.fields))));
  }

  /** The fewest replicas that confirmed, over the nodes holding these buckets. */
  private async confirmAll(parts: BucketPart[]): Promise<number> {
    const nodes = new Set(parts.map((p) => this.nodeOf(p.key)));
    try {
      const acks = await Promise.all([...nodes].map((n) => this.confirm(n)));
      return Math.min(...acks);
    } catch {
      return 0; // Unknown: treated as not confirmed.
    }
  }

  /**
   * WAIT for the replicas on a node's connection (WAIT covers the writes of its own connection).
   * One WAIT per node serves every claim answered before it leaves, so concurrent requests share a
   * round trip. WAIT blocks that connection until the replicas answer or its timeout, so the
   * command deadline allows for it.
   */
  private confirm(node: Redis): Promise<number> {
    let w = this.nextWait.get(node);
    if (!w) {
      w = new Promise<number>((resolve, reject) => {
        setImmediate(() => {
          this.nextWait.delete(node);
          const { replicas, timeoutMs } = this.durability;
          this.deadline(node.wait(replicas, timeoutMs), timeoutMs + this.timeoutMs).then((n) => resolve(Number(n)), reject);
        });
      });
      this.nextWait.set(node, w);
    }
    return w;
  }

  private isCluster(): boolean {
    const c = this.r as Partial<Cluster>;
    return typeof c.nodes === 'function' && !!c.slots;
  }
  /** "host:port" of the master serving a key's slot ("" without a Cluster). */
  private nodeName(key: string): string {
    if (!this.isCluster()) return '';
    return (this.r as Cluster).slots[hashSlot(key)]?.[0] ?? '';
  }
  /** The connection of the master serving a key's slot. */
  private nodeOf(key: string): Redis {
    if (!this.isCluster()) return this.r as Redis;
    const name = this.nodeName(key);
    return (this.r as Cluster).nodes('master').find((n) => `${n.options.host}:${n.options.port}` === name) ?? (this.r as unknown as Redis);
  }

  async finish(spentIds: string[], expiresAt: number[], binding: string, cached: Buffer | undefined, cacheTtlMs: number): Promise<boolean> {
    const bind = bindingBytes(binding);
    const parts = this.buckets(spentIds, expiresAt);
    if (this.single) {
      const args: Args = [1 + parts.length, this.cacheKey(binding)];
      for (const part of parts) args.push(part.key);
      args.push(bind, cached ? cached.toString('base64') : '', Math.max(1, cacheTtlMs));
      for (const part of parts) args.push(part.fields.length, ...part.fields);
      this.coalesce();
      return (await this.deadline(requestScripts.finish.run(this.r as Redis, args))) === 1;
    }
    // The answer first: once a bucket says "done", a retry looks for it (and a pod dying in
    // between leaves a cached answer nobody reads, not a "done" without its answer).
    this.coalesce();
    // base64 text, not a Buffer argument: with a Buffer ioredis writes every argument to the socket
    // separately (one syscall each), which cost more than the 33 % size.
    if (cached) await this.deadline(this.r.set(this.cacheKey(binding), cached.toString('base64'), 'PX', Math.max(1, cacheTtlMs)));
    const r = await Promise.all(parts.map((p) => this.deadline(this.r.llmtorFinishBucket(p.key, bind, ...p.fields))));
    return r.every((x) => x === 1);
  }

  async release(spentIds: string[], expiresAt: number[], binding: string, mode: 'retryable' | 'free'): Promise<void> {
    const parts = this.buckets(spentIds, expiresAt);
    if (this.single) await this.releaseRequest(parts, bindingBytes(binding), mode === 'free' ? 'free' : 'r');
    else await this.releaseParts(parts, bindingBytes(binding), mode === 'free' ? 'free' : 'r');
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
        const m = /bl:([pt]):\{?([0-9a-f]{64})\}?$/.exec(k);
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

/** The bytes of a request binding kept in a spent entry. */
function bindingBytes(binding: string): Buffer {
  // One-shot hash where Node has it (≥ 20.12): no Hash object per call.
  const h = typeof hash === 'function' ? hash('sha256', binding, 'buffer') : createHash('sha256').update(binding).digest();
  return h.subarray(0, BIND_BYTES);
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

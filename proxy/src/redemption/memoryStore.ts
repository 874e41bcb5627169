/**
 * Embedded, single-process store with the same semantics as the Lua scripts of
 * redisStore.ts. JavaScript runs each method to completion without awaiting in
 * between, which gives the same atomicity within one process.
 */
import type { BlacklistEntry, BlacklistKind, ClaimRequest, ClaimResult, RedemptionStore } from './store.js';

interface Entry {
  value: string | Buffer;
  expiresAt: number;
}

export class MemoryRedemptionStore implements RedemptionStore {
  private readonly map = new Map<string, Entry>();
  private readonly flags = new Map<string, { n: number; expiresAt: number }>();
  private sweepAt = 0;

  constructor(private readonly now: () => number) {}

  healthy(): boolean {
    return true;
  }

  private get(key: string): Entry | undefined {
    const e = this.map.get(key);
    if (e && e.expiresAt <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    return e;
  }

  /** Memory stays bounded like Redis's: expired entries are dropped on a periodic sweep. */
  private sweep(): void {
    const now = this.now();
    if (now < this.sweepAt) return;
    this.sweepAt = now + 10_000;
    for (const [k, e] of this.map) if (e.expiresAt <= now) this.map.delete(k);
  }

  async claim(req: ClaimRequest): Promise<ClaimResult> {
    this.sweep();
    const { binding, now } = req;
    if (req.pseudonym && (this.get(`bl:p:${req.pseudonym.permanent}`) || this.get(`bl:t:${req.pseudonym.transient}`))) return { kind: 'blacklisted' };
    let state: 'd' | 'p' | undefined;
    let wait = 0;
    for (const id of req.spentIds) {
      const e = this.get(`s:${id}`);
      if (!e) continue;
      const [s, b, lease] = String(e.value).split('|');
      if (b !== binding) return { kind: 'conflict' };
      if (s === 'd') state = 'd';
      else if (s === 'p' && state !== 'd' && Number(lease) > now) {
        state = 'p';
        wait = Number(lease) - now;
      }
    }
    if (state === 'd') {
      const c = this.get(`c:${binding}`);
      return c ? { kind: 'done', cached: c.value as Buffer } : { kind: 'done' };
    }
    if (state === 'p') return { kind: 'in_progress', retryAfterMs: wait };
    if (req.pseudonym && req.rateLimit) {
      const k = `rl:${req.pseudonym.permanent}:${Math.floor(now / req.rateLimit.windowMs)}`;
      const e = this.get(k);
      const n = (e ? Number(e.value) : 0) + 1;
      const expiresAt = e?.expiresAt ?? now + req.rateLimit.windowMs;
      this.map.set(k, { value: String(n), expiresAt });
      if (n > req.rateLimit.limit) return { kind: 'rate_limited', retryAfterMs: expiresAt - now };
    }
    const value = `p|${binding}|${now + req.leaseMs}`;
    req.spentIds.forEach((id, i) => this.map.set(`s:${id}`, { value, expiresAt: Math.max(now + 1, req.expiresAt[i] ?? now + 1) }));
    return { kind: 'claimed' };
  }

  async finish(spentIds: string[], _expiresAt: number[], binding: string, cached: Buffer | undefined, cacheTtlMs: number): Promise<boolean> {
    const prefix = `p|${binding}|`;
    const entries = spentIds.map((id) => this.get(`s:${id}`));
    if (entries.some((e) => !e || !String(e.value).startsWith(prefix))) return false;
    for (const e of entries) e!.value = `d|${binding}`;
    if (cached) this.map.set(`c:${binding}`, { value: Buffer.from(cached), expiresAt: this.now() + cacheTtlMs });
    return true;
  }

  async release(spentIds: string[], _expiresAt: number[], binding: string, mode: 'retryable' | 'free'): Promise<void> {
    const prefix = `p|${binding}|`;
    for (const id of spentIds) {
      const e = this.get(`s:${id}`);
      if (!e || !String(e.value).startsWith(prefix)) continue;
      if (mode === 'free') this.map.delete(`s:${id}`);
      else e.value = `r|${binding}`;
    }
  }

  async blacklistAdd(e: BlacklistEntry): Promise<void> {
    this.map.set(`bl:${e.kind === 'permanent' ? 'p' : 't'}:${e.pseudonym}`, { value: '1', expiresAt: e.expiresAt ?? Number.MAX_SAFE_INTEGER });
  }

  async blacklistRemove(kind: BlacklistKind, pseudonym: string): Promise<boolean> {
    return this.map.delete(`bl:${kind === 'permanent' ? 'p' : 't'}:${pseudonym}`);
  }

  async blacklistList(): Promise<BlacklistEntry[]> {
    const out: BlacklistEntry[] = [];
    for (const k of [...this.map.keys()]) {
      const m = /^bl:([pt]):(.+)$/.exec(k);
      const e = m && this.get(k);
      if (!m || !e) continue;
      const entry: BlacklistEntry = { kind: m[1] === 'p' ? 'permanent' : 'transient', pseudonym: m[2]! };
      if (e.expiresAt !== Number.MAX_SAFE_INTEGER) entry.expiresAt = e.expiresAt;
      out.push(entry);
    }
    return out;
  }

  async flag(permanent: string, ttlMs: number): Promise<number> {
    const now = this.now();
    const e = this.flags.get(permanent);
    const n = (e && e.expiresAt > now ? e.n : 0) + 1;
    this.flags.set(permanent, { n, expiresAt: now + ttlMs });
    return n;
  }

  async flagged(limit: number): Promise<{ pseudonym: string; flags: number }[]> {
    const now = this.now();
    return [...this.flags]
      .filter(([, e]) => e.expiresAt > now)
      .sort((a, b) => b[1].n - a[1].n)
      .slice(0, limit)
      .map(([pseudonym, e]) => ({ pseudonym, flags: e.n }));
  }
}

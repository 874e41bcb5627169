/**
 * Issuance store on Redis (ioredis; single node, Sentinel or Cluster). All
 * keys of one account share the hash tag `{a:<accountId>}` so each Lua script
 * touches one slot. Key layout (prefix default `llmtor:`):
 *
 *   acctkey:{<keyHash>}            → accountId            (account key hash index)
 *   {a:<id>}:acct                  hash balance, created, perm, tr:<epoch>, granted (credits ever granted by an admin)
 *   {a:<id>}:journal               stream: type delta balance at ref [note]
 *   {a:<id>}:purchases             hash sessionId → PurchaseRecord JSON
 *   {a:<id>}:idem:<requestId>      hash state hash at count purpose epoch [resp] (TTL)
 *   {a:<id>}:evt:<stripeEventId>   processed-event marker (TTL)
 *   pi:{<paymentIntent>}           → {"accountId","sessionId"} (refund/dispute lookup)
 *   rl:{<name>}:<window>           fixed-window counters (TTL)
 *   {issuance}:pending             zset "<accountId> <requestId>" → time of attempt (sweeper's index)
 *
 * Keys of different slots are never in one script; where two must change
 * together the order makes it safe: the payment-intent index is written before
 * the credit, the pending index before the reservation.
 */
import type { JournalEntry, JournalType } from '../ledger/journal.js';
import type {
  AccountSnapshot,
  CompletionOutcome,
  IssuanceStore,
  IssuanceReservationRequest,
  PaymentOutcome,
  PurchaseRecord,
  RateDecision,
  Reservation,
  ReversalOutcome,
  SweptReservation,
} from './issuanceStore.js';
import * as scripts from './issuanceScripts.js';
import type { RedisClient } from './luaScript.js';

export class RedisIssuanceStore implements IssuanceStore {
  readonly kind = 'redis' as const;
  /** Pending-index scores of this process's own reservations in flight, so it removes only entries it wrote. */
  private readonly attempts = new Map<string, string>();
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix = 'llmtor:',
  ) {}

  private get pendingIndex(): string {
    return `${this.prefix}{issuance}:pending`;
  }

  private acct(id: string) {
    const t = `${this.prefix}{a:${id}}:`;
    return { acct: `${t}acct`, journal: `${t}journal`, purchases: `${t}purchases`, idem: (r: string) => `${t}idem:${r}`, evt: (e: string) => `${t}evt:${e}` };
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    // The connection is owned by whoever created it (the stack).
  }

  async createAccount(keyHash: string, accountId: string, now: number): Promise<boolean> {
    const ok = await this.redis.set(`${this.prefix}acctkey:{${keyHash}}`, accountId, 'NX');
    if (ok !== 'OK') return false;
    // Index and account live in different slots; creating the hash after the index is safe (a missing balance reads as 0).
    await this.redis.hset(this.acct(accountId).acct, 'created', String(now), 'balance', '0');
    return true;
  }

  async accountIdForKeyHash(keyHash: string): Promise<string | undefined> {
    return (await this.redis.get(`${this.prefix}acctkey:{${keyHash}}`)) ?? undefined;
  }

  async balance(accountId: string): Promise<number> {
    return Number((await this.redis.hget(this.acct(accountId).acct, 'balance')) ?? 0);
  }

  async snapshot(accountId: string): Promise<AccountSnapshot> {
    const k = this.acct(accountId);
    const [h, p] = await Promise.all([this.redis.hgetall(k.acct), this.redis.hgetall(k.purchases)]);
    const transientIssued: Record<string, number> = {};
    for (const [f, v] of Object.entries(h)) if (f.startsWith('tr:')) transientIssued[f.slice(3)] = Number(v);
    const purchases = Object.values(p)
      .map((v) => JSON.parse(v) as PurchaseRecord)
      .sort((a, b) => a.createdAt - b.createdAt);
    return { accountId, createdAt: Number(h.created ?? 0), balance: Number(h.balance ?? 0), permanentIssued: Number(h.perm ?? 0), transientIssued, purchases };
  }

  async journal(accountId: string): Promise<JournalEntry[]> {
    const rows = await this.redis.xrange(this.acct(accountId).journal, '-', '+');
    return rows.map(([id, fields]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      const e: JournalEntry = { id, type: f.type as JournalType, delta: Number(f.delta), balance: Number(f.balance), at: Number(f.at), ref: f.ref ?? '' };
      if (f.note !== undefined) e.note = f.note;
      return e;
    });
  }

  async grant(accountId: string, credits: number, grantId: string, note: string, now: number): Promise<{ balance: number }> {
    const k = this.acct(accountId);
    const bal = await scripts.grant.run<number>(this.redis, [k.acct, k.journal], [credits, grantId, note, now]);
    return { balance: Number(bal) };
  }

  async recordCheckout(accountId: string, purchase: PurchaseRecord): Promise<void> {
    // HSETNX: a retried checkout creation (same idempotent Stripe session) must not reset a paid record.
    await this.redis.hsetnx(this.acct(accountId).purchases, purchase.sessionId, JSON.stringify(purchase));
  }

  async applyPayment(accountId: string, p: { sessionId: string; eventId: string; paymentIntent: string; now: number; eventTtlMs: number }): Promise<PaymentOutcome> {
    const k = this.acct(accountId);
    // The index lives on the payment intent's slot, the credit on the account's: index first (idempotent),
    // so a credit is never visible without it — also when this process dies between the two.
    if (p.paymentIntent) await this.redis.set(this.piKey(p.paymentIntent), JSON.stringify({ accountId, sessionId: p.sessionId }), 'NX');
    const r = await scripts.applyPayment.run<[string, number?, number?]>(this.redis, [k.acct, k.journal, k.purchases, k.evt(p.eventId)], [
      p.sessionId,
      p.eventId,
      p.now,
      p.eventTtlMs,
      p.paymentIntent,
    ]);
    if (r[0] === 'credited') return { outcome: 'credited', credits: Number(r[1]), balance: Number(r[2]) };
    return { outcome: r[0] as 'duplicate_event' | 'already_paid' | 'unknown_session' };
  }

  async applyReversal(
    accountId: string,
    r: { sessionId: string; eventId: string; kind: 'refund' | 'dispute'; targetCredits: number; now: number; eventTtlMs: number },
  ): Promise<ReversalOutcome> {
    const k = this.acct(accountId);
    const out = await scripts.applyReversal.run<[string, number?, number?, number?]>(this.redis, [k.acct, k.journal, k.purchases, k.evt(r.eventId)], [
      r.sessionId,
      r.eventId,
      r.kind,
      r.targetCredits,
      r.now,
      r.eventTtlMs,
    ]);
    if (out[0] === 'reversed') return { outcome: 'reversed', owed: Number(out[1]), debited: Number(out[2]), balance: Number(out[3]) };
    return { outcome: out[0] as 'duplicate_event' | 'nothing_owed' | 'not_paid' | 'unknown_session' };
  }

  private piKey(paymentIntent: string): string {
    return `${this.prefix}pi:{${paymentIntent}}`;
  }

  async lookupPaymentIntent(paymentIntent: string): Promise<{ accountId: string; sessionId: string } | undefined> {
    const v = await this.redis.get(this.piKey(paymentIntent));
    return v ? (JSON.parse(v) as { accountId: string; sessionId: string }) : undefined;
  }

  async reserveIssuance(accountId: string, r: IssuanceReservationRequest): Promise<Reservation> {
    const k = this.acct(accountId);
    const idem = k.idem(r.requestId);
    // Indexed before the debit, so a pod dying right after it still leaves the request findable by the sweeper.
    // The fraction keeps two attempts' scores apart, for the conditional removals.
    const member = `${accountId} ${r.requestId}`;
    const score = String(r.now + Math.random());
    await this.redis.zadd(this.pendingIndex, score, member);
    let out: [string, number?, number?];
    try {
      out = await scripts.reserveIssuance.run(this.redis, [k.acct, k.journal, idem, k.purchases], [
        r.requestId,
        r.bodyHash,
        r.purpose,
        r.epoch,
        r.count,
        r.quotaLimit,
        r.now,
        r.ttlMs,
        r.takeoverMs,
        r.abuseRequires,
      ]);
    } catch (e) {
      this.attempts.delete(member);
      throw e;
    }
    // Only an attempt that reserved owns the entry; otherwise it stays (another attempt may own the request) and the sweeper drops it later.
    if (out[0] === 'reserved' || out[0] === 'takeover') this.attempts.set(member, score);
    else this.attempts.delete(member);
    switch (out[0]) {
      case 'reserved':
        return { kind: 'reserved', balance: Number(out[1]) };
      case 'insufficient':
        return { kind: 'insufficient', balance: Number(out[1]) };
      case 'quota':
        return { kind: 'quota', used: Number(out[1]), limit: Number(out[2]) };
      case 'replay': {
        // A done record is immutable, so reading it after the script is safe.
        const resp = await this.redis.hgetBuffer(idem, 'resp');
        if (!resp) return { kind: 'in_progress' };
        return { kind: 'replay', response: new Uint8Array(resp.buffer, resp.byteOffset, resp.byteLength) };
      }
      case 'takeover':
      case 'conflict':
      case 'in_progress':
      case 'unpaid':
        return { kind: out[0] };
      default:
        throw new Error(`unexpected reserve result ${String(out[0])}`);
    }
  }

  async completeIssuance(accountId: string, c: { requestId: string; response: Uint8Array; failed: number; now: number; ttlMs: number }): Promise<CompletionOutcome> {
    const k = this.acct(accountId);
    const out = await scripts.completeIssuance.run<string>(this.redis, [k.acct, k.journal, k.idem(c.requestId)], [
      c.requestId,
      Buffer.from(c.response.buffer, c.response.byteOffset, c.response.byteLength),
      c.failed,
      c.now,
      c.ttlMs,
    ]);
    if (out === 'aborted') {
      this.attempts.delete(`${accountId} ${c.requestId}`);
      return 'aborted';
    }
    await this.unindex(accountId, c.requestId);
    return out === 'already' ? 'already' : 'ok';
  }

  async abortIssuance(accountId: string, a: { requestId: string; now: number }): Promise<void> {
    const k = this.acct(accountId);
    await scripts.abortIssuance.run(this.redis, [k.acct, k.journal, k.idem(a.requestId)], [a.requestId, a.now]);
    await this.unindex(accountId, a.requestId);
  }

  /** Drops this process's index entry of a finished request (not one a later attempt wrote; the sweeper cleans up the rest). */
  private async unindex(accountId: string, requestId: string): Promise<void> {
    const member = `${accountId} ${requestId}`;
    const score = this.attempts.get(member);
    this.attempts.delete(member);
    if (score !== undefined) await scripts.pendingIndexUpdate.run(this.redis, [this.pendingIndex], [member, score, '']);
  }

  async sweepAbandoned(s: { now: number; abandonedMs: number; limit: number }): Promise<SweptReservation[]> {
    const rows = await this.redis.zrangebyscore(this.pendingIndex, '-inf', `(${s.now - s.abandonedMs}`, 'WITHSCORES', 'LIMIT', 0, s.limit);
    const swept: SweptReservation[] = [];
    for (let i = 0; i + 1 < rows.length; i += 2) {
      const member = rows[i]!;
      const score = rows[i + 1]!;
      const [accountId, requestId] = member.split(' ');
      if (!accountId || !requestId) {
        await scripts.pendingIndexUpdate.run(this.redis, [this.pendingIndex], [member, score, '']);
        continue;
      }
      const k = this.acct(accountId);
      const r = await scripts.sweepReservation.run<[string, string?, number?]>(this.redis, [k.acct, k.journal, k.idem(requestId)], [requestId, s.now, s.abandonedMs]);
      if (r[0] === 'fresh') {
        // Attempted again since (a takeover): look again when that attempt is abandoned.
        await scripts.pendingIndexUpdate.run(this.redis, [this.pendingIndex], [member, score, r[1]!]);
        continue;
      }
      await scripts.pendingIndexUpdate.run(this.redis, [this.pendingIndex], [member, score, '']);
      if (r[0] === 'refunded') swept.push({ accountId, requestId, purpose: r[1] as SweptReservation['purpose'], count: Number(r[2]) });
    }
    return swept;
  }

  async rateLimit(name: string, limit: number, windowMs: number, now: number, cost: number): Promise<RateDecision> {
    const window = Math.floor(now / windowMs);
    const allowed = await scripts.rateLimit.run<number>(this.redis, [`${this.prefix}rl:{${name}}:${window}`], [limit, windowMs, cost]);
    return { allowed: allowed === 1, retryAfterMs: allowed === 1 ? 0 : (window + 1) * windowMs - now };
  }
}

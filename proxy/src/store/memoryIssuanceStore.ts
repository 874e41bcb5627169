/**
 * In-process issuance store: the embedded default for the local demo. Every
 * method runs to completion without awaiting in between, so each is atomic in
 * this one process. Not durable, not shared between processes: the stack logs
 * that loudly when it is used.
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

interface Account {
  createdAt: number;
  balance: number;
  /** Credits ever granted by an admin (abuse tokens may require a purchase or a grant). */
  granted: number;
  quota: Map<string, number>;
  journal: JournalEntry[];
  purchases: Map<string, PurchaseRecord>;
  idem: Map<string, { state: 'pending' | 'done' | 'aborted'; hash: string; at: number; count: number; purpose: string; epoch: string; resp?: Uint8Array; expires: number }>;
  events: Map<string, number>;
}

export class MemoryIssuanceStore implements IssuanceStore {
  readonly kind = 'memory' as const;
  private readonly keys = new Map<string, string>();
  private readonly accounts = new Map<string, Account>();
  private readonly paymentIntents = new Map<string, { accountId: string; sessionId: string }>();
  private readonly counters = new Map<string, { count: number; expires: number }>();
  private seq = 0;

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}

  private account(id: string): Account {
    let a = this.accounts.get(id);
    if (!a) {
      a = { createdAt: 0, balance: 0, granted: 0, quota: new Map(), journal: [], purchases: new Map(), idem: new Map(), events: new Map() };
      this.accounts.set(id, a);
    }
    return a;
  }

  private append(a: Account, type: JournalType, delta: number, at: number, ref: string, note?: string): void {
    const e: JournalEntry = { id: `${at}-${this.seq++}`, type, delta, balance: a.balance, at, ref };
    if (note !== undefined) e.note = note;
    a.journal.push(e);
  }

  async createAccount(keyHash: string, accountId: string, now: number): Promise<boolean> {
    if (this.keys.has(keyHash)) return false;
    this.keys.set(keyHash, accountId);
    this.account(accountId).createdAt = now;
    return true;
  }

  async accountIdForKeyHash(keyHash: string): Promise<string | undefined> {
    return this.keys.get(keyHash);
  }

  async balance(accountId: string): Promise<number> {
    return this.account(accountId).balance;
  }

  async snapshot(accountId: string): Promise<AccountSnapshot> {
    const a = this.account(accountId);
    const transientIssued: Record<string, number> = {};
    for (const [f, v] of a.quota) if (f.startsWith('tr:')) transientIssued[f.slice(3)] = v;
    return {
      accountId,
      createdAt: a.createdAt,
      balance: a.balance,
      permanentIssued: a.quota.get('perm') ?? 0,
      transientIssued,
      purchases: [...a.purchases.values()].map((p) => ({ ...p })).sort((x, y) => x.createdAt - y.createdAt),
    };
  }

  async journal(accountId: string): Promise<JournalEntry[]> {
    return this.account(accountId).journal.map((e) => ({ ...e }));
  }

  async grant(accountId: string, credits: number, grantId: string, note: string, now: number): Promise<{ balance: number }> {
    const a = this.account(accountId);
    a.balance += credits;
    a.granted += credits;
    this.append(a, 'grant', credits, now, grantId, note);
    return { balance: a.balance };
  }

  async recordCheckout(accountId: string, purchase: PurchaseRecord): Promise<void> {
    const a = this.account(accountId);
    if (!a.purchases.has(purchase.sessionId)) a.purchases.set(purchase.sessionId, { ...purchase });
  }

  private seenEvent(a: Account, eventId: string, now: number): boolean {
    const exp = a.events.get(eventId);
    return exp !== undefined && exp > now;
  }

  async applyPayment(accountId: string, p: { sessionId: string; eventId: string; paymentIntent: string; now: number; eventTtlMs: number }): Promise<PaymentOutcome> {
    const a = this.account(accountId);
    if (p.paymentIntent && !this.paymentIntents.has(p.paymentIntent)) this.paymentIntents.set(p.paymentIntent, { accountId, sessionId: p.sessionId });
    if (this.seenEvent(a, p.eventId, p.now)) return { outcome: 'duplicate_event' };
    const rec = a.purchases.get(p.sessionId);
    if (!rec) return { outcome: 'unknown_session' };
    a.events.set(p.eventId, p.now + p.eventTtlMs);
    if (rec.status === 'paid') return { outcome: 'already_paid' };
    rec.status = 'paid';
    rec.paidAt = p.now;
    if (p.paymentIntent) rec.paymentIntent = p.paymentIntent;
    a.balance += rec.credits;
    this.append(a, 'purchase', rec.credits, p.now, p.sessionId, `event ${p.eventId}`);
    return { outcome: 'credited', credits: rec.credits, balance: a.balance };
  }

  async applyReversal(
    accountId: string,
    r: { sessionId: string; eventId: string; kind: 'refund' | 'dispute'; targetCredits: number; now: number; eventTtlMs: number },
  ): Promise<ReversalOutcome> {
    const a = this.account(accountId);
    if (this.seenEvent(a, r.eventId, r.now)) return { outcome: 'duplicate_event' };
    const rec = a.purchases.get(r.sessionId);
    if (!rec) return { outcome: 'unknown_session' };
    if (rec.status !== 'paid') return { outcome: 'not_paid' };
    a.events.set(r.eventId, r.now + r.eventTtlMs);
    const field = r.kind === 'refund' ? 'refundTarget' : 'disputeTarget';
    const target = Math.min(r.targetCredits, rec.credits);
    if ((rec[field] ?? 0) < target) rec[field] = target;
    const total = Math.min(rec.credits, (rec.refundTarget ?? 0) + (rec.disputeTarget ?? 0));
    const owed = total - (rec.reversed ?? 0);
    if (owed <= 0) return { outcome: 'nothing_owed' };
    const debit = Math.min(owed, a.balance);
    rec.reversed = total;
    rec.reversedDebited = (rec.reversedDebited ?? 0) + debit;
    a.balance -= debit;
    this.append(a, r.kind === 'refund' ? 'stripe_refund' : 'stripe_dispute', -debit, r.now, r.sessionId, `event ${r.eventId}: owed ${owed}, unspent debited ${debit}`);
    return { outcome: 'reversed', owed, debited: debit, balance: a.balance };
  }

  async lookupPaymentIntent(paymentIntent: string): Promise<{ accountId: string; sessionId: string } | undefined> {
    return this.paymentIntents.get(paymentIntent);
  }

  private quotaField(purpose: string, epoch: string): string {
    return purpose === 'transient' ? `tr:${epoch}` : 'perm';
  }

  private giveBack(a: Account, n: number, purpose: string, epoch: string, ref: string, now: number, note?: string): void {
    if (n <= 0) return;
    if (purpose === 'credit') {
      a.balance += n;
      this.append(a, 'issue_refund', n, now, ref, note);
    } else {
      const f = this.quotaField(purpose, epoch);
      a.quota.set(f, (a.quota.get(f) ?? 0) - n);
    }
  }

  async reserveIssuance(accountId: string, r: IssuanceReservationRequest): Promise<Reservation> {
    const a = this.account(accountId);
    const existing = a.idem.get(r.requestId);
    if (existing && existing.expires > r.now) {
      if (existing.hash !== r.bodyHash) return { kind: 'conflict' };
      if (existing.state === 'done') return { kind: 'replay', response: existing.resp! };
      if (existing.state === 'pending') {
        if (r.now - existing.at < r.takeoverMs) return { kind: 'in_progress' };
        existing.at = r.now;
        return { kind: 'takeover' };
      }
      // aborted (swept): reserve afresh below
    }
    if (r.purpose === 'credit') {
      if (a.balance < r.count) return { kind: 'insufficient', balance: a.balance };
      a.balance -= r.count;
      this.append(a, 'issue', -r.count, r.now, r.requestId);
    } else {
      const paid = [...a.purchases.values()].some((p) => p.status === 'paid' && (p.reversed ?? 0) < p.credits);
      if (r.abuseRequires !== 'none' && !paid && !(r.abuseRequires === 'purchase_or_grant' && a.granted > 0)) return { kind: 'unpaid' };
      const f = this.quotaField(r.purpose, r.epoch);
      const used = a.quota.get(f) ?? 0;
      if (used + r.count > r.quotaLimit) return { kind: 'quota', used, limit: r.quotaLimit };
      a.quota.set(f, used + r.count);
    }
    a.idem.set(r.requestId, { state: 'pending', hash: r.bodyHash, at: r.now, count: r.count, purpose: r.purpose, epoch: r.epoch, expires: r.now + r.ttlMs });
    this.pruneIdem(a, r.now);
    return { kind: 'reserved', balance: a.balance };
  }

  private pruneIdem(a: Account, now: number): void {
    if (a.idem.size < 1000) return;
    for (const [k, v] of a.idem) if (v.expires <= now) a.idem.delete(k);
  }

  async completeIssuance(accountId: string, c: { requestId: string; response: Uint8Array; failed: number; now: number; ttlMs: number }): Promise<CompletionOutcome> {
    const a = this.account(accountId);
    const rec = a.idem.get(c.requestId);
    if (rec?.state === 'done') return 'already';
    if (!rec || rec.state !== 'pending') return 'aborted';
    this.giveBack(a, Math.min(c.failed, rec.count), rec.purpose, rec.epoch, c.requestId, c.now);
    rec.state = 'done';
    rec.resp = c.response;
    rec.expires = c.now + c.ttlMs;
    return 'ok';
  }

  async abortIssuance(accountId: string, x: { requestId: string; now: number }): Promise<void> {
    const a = this.account(accountId);
    const rec = a.idem.get(x.requestId);
    if (!rec || rec.state !== 'pending') return;
    this.giveBack(a, rec.count, rec.purpose, rec.epoch, x.requestId, x.now);
    a.idem.delete(x.requestId);
  }

  async sweepAbandoned(s: { now: number; abandonedMs: number; limit: number }): Promise<SweptReservation[]> {
    const swept: SweptReservation[] = [];
    for (const [accountId, a] of this.accounts) {
      for (const [requestId, rec] of a.idem) {
        if (swept.length >= s.limit) return swept;
        if (rec.state !== 'pending' || rec.expires <= s.now || s.now - rec.at < s.abandonedMs) continue;
        this.giveBack(a, rec.count, rec.purpose, rec.epoch, requestId, s.now, 'abandoned: the pod died before answering');
        rec.state = 'aborted';
        swept.push({ accountId, requestId, purpose: rec.purpose as SweptReservation['purpose'], count: rec.count });
      }
    }
    return swept;
  }

  async rateLimit(name: string, limit: number, windowMs: number, now: number, cost: number): Promise<RateDecision> {
    const window = Math.floor(now / windowMs);
    const key = `${name}:${window}`;
    const c = this.counters.get(key);
    const count = c && c.expires > now ? c.count : 0;
    if (count >= limit) return { allowed: false, retryAfterMs: (window + 1) * windowMs - now };
    if (cost > 0) this.counters.set(key, { count: count + cost, expires: (window + 1) * windowMs });
    if (this.counters.size > 10_000) for (const [k, v] of this.counters) if (v.expires <= now) this.counters.delete(k);
    return { allowed: true, retryAfterMs: 0 };
  }
}

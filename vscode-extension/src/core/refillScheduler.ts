/**
 * The I/O side of the refill schedule (the decisions are refillPlan.ts). Two independent
 * random timers: one fetches and pins the issuer directory anonymously over Tor, the other
 * wakes to get a fixed batch of tokens when the pool is low. Nothing here reacts to a send.
 * The schedule starts on the user's first explicit use (a send, "Get tokens", sign-in), never
 * at activation, so the identity side cannot tell when someone sits at the editor.
 */
import { firstWake, nextDirectoryFetch, planRefill, DEFAULT_REFILL_POLICY, type RefillPolicy, type RefillStep, type Rng } from './refillPlan.js';
import type { LlmTorClient } from './llmtorClient.js';

export interface SchedulerDeps {
  client: Pick<LlmTorClient, 'refreshDirectory' | 'refill' | 'abuseActions' | 'issueAbuse' | 'account' | 'pinned' | 'accountKey' | 'wallet'>;
  now?: () => number;
  rng?: Rng;
  policy?: RefillPolicy;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (h: unknown) => void;
  /** A failure of a scheduled step (a key-consistency alarm must reach the user). */
  onError?: (e: unknown) => void;
  /** After a scheduled step changed something (balance, wallet). */
  onStep?: (step: RefillStep & { balance?: number }) => void;
  /** A scheduled issuance starts (a sentence for the UI) or ends (undefined). */
  onProgress?: (text: string | undefined) => void;
}

/** The first directory fetch of a session comes soon but at a random time, not at once. */
const FIRST_DIRECTORY_MIN_MS = 60_000;
const FIRST_DIRECTORY_SPREAD_MS = 9 * 60_000;

export class RefillScheduler {
  private started = false;
  private refillTimer: unknown;
  private directoryTimer: unknown;
  private lastDirectoryAt: number | undefined;
  private inFlight: Promise<unknown> = Promise.resolve();
  nextRefillAt: number | undefined;
  nextDirectoryAt: number | undefined;
  private readonly now: () => number;
  private readonly rng: Rng;
  readonly policy: RefillPolicy;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (h: unknown) => void;

  constructor(private readonly deps: SchedulerDeps) {
    this.now = deps.now ?? Date.now;
    this.rng = deps.rng ?? Math.random;
    this.policy = deps.policy ?? DEFAULT_REFILL_POLICY;
    this.setTimer =
      deps.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, Math.min(ms, 2 ** 31 - 1));
        t.unref?.();
        return t;
      });
    this.clearTimer = deps.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
  }

  get isStarted(): boolean {
    return this.started;
  }

  /** Arms both timers (idempotent). Call on an explicit user action only. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const now = this.now();
    const pinned = (await this.deps.client.pinned()).directory;
    const fresh = pinned !== undefined && now - pinned.fetchedAt < this.policy.directoryMaxMs;
    this.lastDirectoryAt = pinned?.fetchedAt;
    this.armDirectory(fresh ? nextDirectoryFetch(now, this.rng, this.policy) : now + FIRST_DIRECTORY_MIN_MS + Math.floor(this.rng() * FIRST_DIRECTORY_SPREAD_MS));
    this.armRefill(firstWake(now, this.rng, this.policy));
  }

  stop(): void {
    this.started = false;
    this.clearTimer(this.refillTimer);
    this.clearTimer(this.directoryTimer);
    this.nextRefillAt = this.nextDirectoryAt = undefined;
  }

  /** Moves the next refill wake to a random time within [min, min + spread] from now (e.g. after a directory fetch the user asked for). */
  wakeRefillWithin(minMs: number, spreadMs: number): void {
    if (!this.started) return;
    this.armRefill(this.now() + minMs + Math.floor(this.rng() * spreadMs));
  }

  private armRefill(at: number): void {
    this.clearTimer(this.refillTimer);
    this.nextRefillAt = at;
    this.refillTimer = this.setTimer(() => this.track(this.refillWake()), Math.max(0, at - this.now()));
  }

  private armDirectory(at: number): void {
    this.clearTimer(this.directoryTimer);
    this.nextDirectoryAt = at;
    this.directoryTimer = this.setTimer(() => this.track(this.directoryWake()), Math.max(0, at - this.now()));
  }

  private track(p: Promise<unknown>): void {
    this.inFlight = Promise.all([this.inFlight, p.catch(() => undefined)]);
  }

  /** Resolves when every step a timer started has finished (tests; shutdown). */
  whenIdle(): Promise<void> {
    return this.inFlight.then(() => undefined);
  }

  /** One directory fetch (a timer fired). */
  async directoryWake(): Promise<void> {
    if (!this.started) return;
    try {
      await this.deps.client.refreshDirectory();
      this.lastDirectoryAt = this.now();
    } catch (e) {
      this.deps.onError?.(e);
    } finally {
      if (this.started) this.armDirectory(nextDirectoryFetch(this.now(), this.rng, this.policy));
    }
  }

  /** One refill wake (a timer fired): plan, then get what the plan says. */
  async refillWake(): Promise<RefillStep | undefined> {
    if (!this.started) return undefined;
    const now = this.now();
    let step: RefillStep | undefined;
    try {
      if (!(await this.deps.client.accountKey())) {
        step = { batch: 0, abuse: [], nextAt: firstWake(now, this.rng, this.policy) };
        return step;
      }
      const counts = await this.deps.client.wallet.counts();
      const actions = await this.deps.client.abuseActions();
      const lastRevokeAt = await this.deps.client.wallet.lastRevokeAt();
      // Any directory fetch counts (the schedule's own, or one the user asked for).
      const fetchedAt = (await this.deps.client.pinned()).directory?.fetchedAt;
      if (fetchedAt !== undefined) this.lastDirectoryAt = Math.max(fetchedAt, this.lastDirectoryAt ?? 0);
      step = planRefill(
        now,
        this.rng,
        {
          total: counts.total,
          balance: undefined,
          ...actions,
          ...(lastRevokeAt !== undefined ? { lastRevokeAt } : {}),
          ...(this.lastDirectoryAt !== undefined ? { lastDirectoryAt: this.lastDirectoryAt } : {}),
        },
        this.policy,
      );
      if (step.batch > 0 || step.abuse.length > 0) {
        // The balance is read only when there is something to get (an identity call at a scheduled time).
        this.deps.onProgress?.('Scheduled refill: checking the balance…');
        const balance = (await this.deps.client.account()).balance;
        const batch = Math.min(step.batch, balance);
        if (balance > 0 || counts.total > 0) {
          if (step.abuse.length > 0) this.deps.onProgress?.('Scheduled refill: getting abuse tokens…');
          await this.deps.client.issueAbuse(step.abuse);
        }
        if (batch > 0) {
          this.deps.onProgress?.(`Scheduled refill: getting ${batch} tokens (blinding, then one request)…`);
          await this.deps.client.refill({ batch, abuse: false, balance });
        }
        // The balance after this wake's issuance (same moment, same channel: nothing new to learn).
        this.deps.onStep?.({ ...step, batch, balance: batch > 0 ? (await this.deps.client.account()).balance : balance });
      }
      return step;
    } catch (e) {
      this.deps.onError?.(e);
      return step;
    } finally {
      this.deps.onProgress?.(undefined);
      if (this.started) this.armRefill(step?.nextAt ?? firstWake(this.now(), this.rng, this.policy));
    }
  }
}

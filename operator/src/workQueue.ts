/**
 * A keyed work queue in the spirit of client-go's workqueue: add(key, after)
 * with dedupe (the earliest due time wins), one run in flight per key (an add
 * during a run runs it once more afterwards), and a back-off hold the worker
 * asks for after a failure that delays every add but a forced one. No
 * informers, no Kubernetes: the controller feeds it keys.
 */

export interface WorkOutcome {
  /** Run the key again after this long (undefined: only when it is added again). */
  requeueAfterMs?: number | undefined;
  /** Hold the key this long: adds before then wait, unless they lift the hold (a failure's back-off). */
  holdMs?: number | undefined;
}

export interface WorkQueueOptions<K> {
  /** Does the work for one key; never called twice at once for the same key. */
  work: (key: K) => Promise<WorkOutcome>;
  /** No add waits longer than this (the resync period: a later one would be superseded by it anyway). */
  maxDelayMs: number;
  /** A worker that throws is retried after this long, held as a back-off (default 5 s). */
  errorRetryMs?: number;
  onError?: (key: K, e: unknown) => void;
}

interface Entry {
  /** Wall-clock time before which no run starts, except after an add that lifts the hold. */
  holdUntil?: number | undefined;
  timer?: NodeJS.Timeout | undefined;
  dueAt?: number | undefined;
  running?: Promise<void> | undefined;
  /** Added with no delay while running: run once more right after. */
  again?: boolean;
}

export class WorkQueue<K> {
  private readonly entries = new Map<K, Entry>();
  private stopped = false;
  private readonly errorRetryMs: number;

  constructor(private readonly opts: WorkQueueOptions<K>) {
    this.errorRetryMs = opts.errorRetryMs ?? 5_000;
  }

  /** Schedules `key` in `delayMs` (capped at maxDelayMs); an earlier pending run of it is kept. */
  add(key: K, delayMs = 0, opts: { liftHold?: boolean } = {}): void {
    if (this.stopped) return;
    const entry = this.entries.get(key) ?? {};
    this.entries.set(key, entry);
    if (opts.liftHold) entry.holdUntil = undefined;
    const held = entry.holdUntil !== undefined ? entry.holdUntil - Date.now() : 0;
    const delay = Math.max(0, held, Math.min(delayMs, this.opts.maxDelayMs));
    const due = Date.now() + delay;
    if (entry.running) {
      if (delay === 0) entry.again = true;
      else if (entry.dueAt === undefined || due < entry.dueAt) this.arm(key, entry, delay, due);
      return;
    }
    if (entry.dueAt !== undefined && entry.dueAt <= due) return;
    this.arm(key, entry, delay, due);
  }

  /** Drops a pending run of `key` (the object is gone); a run in flight finishes. */
  forget(key: K): void {
    const entry = this.entries.get(key);
    if (entry?.timer) clearTimeout(entry.timer);
    if (entry) {
      entry.timer = undefined;
      entry.dueAt = undefined;
    }
    if (entry && !entry.running) this.entries.delete(key);
  }

  /** When `key` is due next (wall clock), if a run is pending. */
  dueAt(key: K): number | undefined {
    return this.entries.get(key)?.dueAt;
  }

  /** Accepts no more adds, cancels pending runs and waits for the ones in flight. */
  async shutDown(): Promise<void> {
    this.stopped = true;
    for (const entry of this.entries.values()) if (entry.timer) clearTimeout(entry.timer);
    await Promise.all([...this.entries.values()].map((entry) => entry.running));
    this.entries.clear();
  }

  private arm(key: K, entry: Entry, delay: number, due: number): void {
    if (entry.timer) clearTimeout(entry.timer);
    entry.dueAt = due;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      entry.dueAt = undefined;
      this.run(key, entry);
    }, delay);
  }

  private run(key: K, entry: Entry): void {
    if (this.stopped) return;
    if (entry.running) {
      entry.again = true;
      return;
    }
    entry.running = (async () => {
      let next: number | undefined;
      try {
        const outcome = await this.opts.work(key);
        next = outcome.requeueAfterMs;
        entry.holdUntil = outcome.holdMs !== undefined ? Date.now() + outcome.holdMs : undefined;
      } catch (e) {
        this.opts.onError?.(key, e);
        next = this.errorRetryMs;
        entry.holdUntil = Date.now() + next;
      }
      entry.running = undefined;
      if (this.stopped) return;
      if (entry.again) {
        entry.again = false;
        this.add(key, 0);
      } else if (next !== undefined) this.add(key, next);
      else if (!entry.timer && this.entries.get(key) === entry && entry.holdUntil === undefined) this.entries.delete(key);
    })();
  }
}

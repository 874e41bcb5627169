/**
 * Gives credits back for issuance requests whose pod died after the debit and
 * before answering, when the client never retried. Runs on every issuance pod
 * (no leader needed): each refund is one atomic store step that also marks the
 * request aborted, so two pods sweeping at once cannot both refund, and a late
 * retry of the request simply reserves (and pays) afresh.
 */
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { IssuanceStore, SweptReservation } from '../store/issuanceStore.js';

export interface SweeperOptions {
  store: IssuanceStore;
  now: () => number;
  logger: Logger;
  /** Pending this long after the last attempt = abandoned. */
  abandonedAfterMs: number;
  intervalMs: number;
  /** Reservations handled per store call; a run continues while full batches come back (up to maxBatches). */
  batchSize?: number;
  maxBatches?: number;
  swept?: Counter<'purpose'>;
}

export class ReservationSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<SweptReservation[]> | undefined;
  private stopped = false;

  constructor(private readonly o: SweeperOptions) {}

  /** One pass; concurrent calls in this process share the pass in flight. */
  runOnce(): Promise<SweptReservation[]> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<SweptReservation[]> {
    const batchSize = this.o.batchSize ?? 100;
    const all: SweptReservation[] = [];
    for (let i = 0; i < (this.o.maxBatches ?? 20) && !this.stopped; i++) {
      const swept = await this.o.store.sweepAbandoned({ now: this.o.now(), abandonedMs: this.o.abandonedAfterMs, limit: batchSize });
      all.push(...swept);
      if (swept.length < batchSize) break;
    }
    for (const s of all) this.o.swept?.inc({ purpose: s.purpose }, s.count);
    // Counts only: which account paid for what stays in the journal.
    if (all.length > 0) this.o.logger.warn({ requests: all.length, credits: all.filter((s) => s.purpose === 'credit').reduce((n, s) => n + s.count, 0) }, 'gave back abandoned issuance reservations');
    return all;
  }

  /** Starts the periodic pass (jittered, so pods do not sweep in lockstep). */
  start(): void {
    const schedule = () => {
      if (this.stopped) return;
      const delay = this.o.intervalMs * (0.75 + Math.random() * 0.5);
      this.timer = setTimeout(() => {
        this.runOnce()
          .catch((e: unknown) => this.o.logger.error({ err: (e as Error).message }, 'reservation sweep failed; retrying next interval'))
          .finally(schedule);
      }, delay);
      this.timer.unref();
    };
    schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }
}

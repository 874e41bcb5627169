/**
 * Per-client-IP fixed-window counters kept in this process's memory only: the
 * issuance side may see IPs, but they are never written to Redis or logs. With
 * N pods a client gets at most N× the limit; the global limit in the store caps
 * the total.
 */
export class IpLimiter {
  private readonly windows = new Map<string, { window: number; count: number }>();
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly maxEntries = 100_000,
  ) {}

  /** Checks, and counts `cost` if allowed. Returns ms until the window ends if refused. */
  hit(ip: string, now: number, cost = 1): { allowed: boolean; retryAfterMs: number } {
    const window = Math.floor(now / this.windowMs);
    const e = this.windows.get(ip);
    const count = e && e.window === window ? e.count : 0;
    if (count >= this.limit) return { allowed: false, retryAfterMs: (window + 1) * this.windowMs - now };
    if (cost > 0) {
      if (this.windows.size >= this.maxEntries) this.prune(window);
      this.windows.set(ip, { window, count: count + cost });
    }
    return { allowed: true, retryAfterMs: 0 };
  }

  /** Gives back `cost` counted by hit() in the same window (an attempt that turned out not to count). */
  refund(ip: string, now: number, cost = 1): void {
    const e = this.windows.get(ip);
    if (e && e.window === Math.floor(now / this.windowMs)) e.count = Math.max(0, e.count - cost);
  }

  private prune(window: number): void {
    for (const [k, v] of this.windows) if (v.window !== window) this.windows.delete(k);
    // Still full (an attack from many addresses): forget everything rather than grow; the global limit still holds.
    if (this.windows.size >= this.maxEntries) this.windows.clear();
  }
}

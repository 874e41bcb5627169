/**
 * Linkage simulation (issue 11; docs/privacy.md "What an operator can still link"). N users
 * chat with realistic timings (sessions, bursts, idle nights, days off); each user's client
 * gets tokens either with the REAL refill plan (src/core/refillPlan.ts: random wakes while the
 * editor is open, fixed batches, a low-water mark with random slack, token ageing) or with the
 * OLD behaviour (refill at start, then 1–11 min after every chat by exactly what was spent).
 *
 * An operator that sees every issuance (account, time, amount) and every redemption
 * (pseudonym, time, tokens) scores every account–pseudonym pair by volume and by timing
 * (issuances smoothed with several kernels against the redemption series) and takes the
 * best one-to-one assignment (Hungarian algorithm). Accuracy = share of accounts matched to
 * their own pseudonym; chance is 1/N. Pure and deterministic for a seed.
 */
import { DEFAULT_REFILL_POLICY, firstWake, planRefill, type RefillPolicy, type Rng } from '../../src/core/refillPlan.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function exp(rng: Rng, mean: number): number {
  return -mean * Math.log(1 - Math.min(rng(), 1 - 1e-12));
}
function normal(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - Math.min(rng(), 1 - 1e-12))) * Math.cos(2 * Math.PI * rng());
}
function poisson(rng: Rng, mean: number): number {
  let k = 0;
  for (let p = Math.exp(-mean), s = rng(); s > p && k < 50; k++) s *= rng();
  return k;
}

export interface Event {
  at: number;
  amount: number;
}

interface UserProfile {
  activeProb: number;
  sessionsPerDay: number;
  peakHour: number;
  chatsPerSession: number;
  gapMinutes: number;
  oneCreditProb: number;
  /** The editor is open through the working day (hours), and around any session outside it. */
  workStart: number;
  workEnd: number;
}

/** One user's chat requests (time, credits) and editor-open windows over `days` days. */
export function userActivity(rng: Rng, days: number): { chats: Event[]; open: [number, number][] } {
  const p: UserProfile = {
    activeProb: 0.55 + 0.4 * rng(),
    sessionsPerDay: 1 + 3 * rng(),
    peakHour: 9 + 12 * rng(),
    chatsPerSession: 2 + 10 * rng(),
    gapMinutes: 0.5 + 4 * rng(),
    oneCreditProb: 0.6 + 0.35 * rng(),
    workStart: 7.5 + 3 * rng(),
    workEnd: 16 + 4 * rng(),
  };
  const chats: Event[] = [];
  const open: [number, number][] = [];
  for (let d = 0; d < days; d++) {
    if (rng() > p.activeProb) {
      // Some days the editor is open for work without any chat.
      if (rng() < 0.3) open.push([d * DAY + (p.workStart + 0.5 * normal(rng)) * HOUR, d * DAY + (p.workEnd + 0.7 * normal(rng)) * HOUR]);
      continue;
    }
    const n = 1 + poisson(rng, p.sessionsPerDay - 1);
    const dayChats: number[] = [];
    for (let i = 0; i < n; i++) {
      const hour = Math.min(24.5, Math.max(7, p.peakHour + 2.5 * normal(rng)));
      let t = d * DAY + hour * HOUR;
      const m = 1 + Math.floor(exp(rng, p.chatsPerSession - 1));
      for (let j = 0; j < m; j++) {
        dayChats.push(t);
        t += exp(rng, p.gapMinutes * MIN) + 10_000;
      }
    }
    dayChats.sort((a, b) => a - b);
    for (const t of dayChats) chats.push({ at: t, amount: rng() < p.oneCreditProb ? 1 : 2 + Math.floor(3 * rng()) });
    const ws = d * DAY + (p.workStart + 0.5 * normal(rng)) * HOUR;
    const we = d * DAY + (p.workEnd + 0.7 * normal(rng)) * HOUR;
    open.push([Math.min(ws, dayChats[0]! - 30 * MIN * rng()), Math.max(we, dayChats.at(-1)! + (10 + 110 * rng()) * MIN)]);
  }
  // Overlapping windows (a session after midnight) merge.
  open.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const w of open) {
    const last = merged.at(-1);
    if (last && w[0] <= last[1]) last[1] = Math.max(last[1], w[1]);
    else merged.push([w[0], w[1]]);
  }
  return { chats, open: merged };
}

export interface Behaviour {
  issuances: Event[];
  redemptions: Event[];
}

/**
 * The new client: the refill plan runs only while the editor is open and starts at the first
 * chat of each window (explicit use); tokens age minAge + U(0, jitter); a chat without enough
 * ready tokens waits for them ("Wait and send"), it never triggers a fetch.
 */
export function newBehaviour(rng: Rng, chats: readonly Event[], open: readonly [number, number][], o: { policy?: RefillPolicy; minAgeMs?: number; jitterMs?: number } = {}): Behaviour {
  const policy = o.policy ?? DEFAULT_REFILL_POLICY;
  const minAge = o.minAgeMs ?? 15 * MIN;
  const jitter = o.jitterMs ?? 30 * MIN;
  const issuances: Event[] = [];
  const redemptions: Event[] = [];
  // A steady-state wallet at the start.
  let pool: number[] = Array.from({ length: policy.lowWater + Math.floor(rng() * policy.batchSize) }, () => -DAY);
  const queue = [...chats];
  let waiting: Event[] = [];
  const spend = (t: number) => {
    // Serve waiting chats in order while enough tokens are ready at t.
    while (waiting.length > 0) {
      const c = waiting[0]!;
      const ready = pool.filter((u) => u <= t).sort((a, b) => a - b);
      if (ready.length < c.amount) break;
      const used = new Set(ready.slice(0, c.amount));
      let removed = 0;
      pool = pool.filter((u) => (removed < c.amount && used.has(u) && ++removed > 0 ? false : true));
      redemptions.push({ at: t, amount: c.amount });
      waiting.shift();
    }
  };
  for (const [from, to] of open) {
    const inWindow = queue.filter((c) => c.at >= from && c.at < to);
    const first = inWindow[0]?.at;
    let nextWake = first !== undefined ? firstWake(first, rng, policy) : Infinity;
    // Merge chat arrivals, token ready times and wakes in time order.
    const arrivals = inWindow.map((c) => c.at);
    let i = 0;
    let now = from;
    for (let guard = 0; guard < 100_000; guard++) {
      const nextArrival = i < arrivals.length ? arrivals[i]! : Infinity;
      // The next token to become ready (only matters while a chat waits).
      let nextReady = Infinity;
      if (waiting.length > 0) for (const u of pool) if (u > now && u < nextReady) nextReady = u;
      const t = Math.min(nextArrival, nextWake, nextReady);
      if (t >= to || t === Infinity) break;
      now = t;
      if (t === nextWake) {
        const step = planRefill(t, rng, { total: pool.length, balance: undefined, permanent: 'keep', transient: 'keep' }, policy);
        if (step.batch > 0) {
          issuances.push({ at: t, amount: step.batch });
          for (let k = 0; k < step.batch; k++) pool.push(t + minAge + Math.floor(rng() * (jitter + 1)));
        }
        nextWake = step.nextAt;
      } else if (t === nextArrival) {
        waiting.push(inWindow[i]!);
        i++;
      }
      spend(t);
    }
    // Chats still waiting when the editor closes are dropped (the user gave up).
    waiting = [];
  }
  return { issuances, redemptions };
}

/** The old client: fill to `pool` when the editor opens, then refill 1–11 min after each chat by what was spent. */
export function oldBehaviour(rng: Rng, chats: readonly Event[], open: readonly [number, number][], poolSize = 5): Behaviour {
  const issuances: Event[] = [];
  const redemptions: Event[] = [];
  let held = poolSize;
  for (const [from, to] of open) {
    if (held < poolSize) {
      issuances.push({ at: from, amount: poolSize - held });
      held = poolSize;
    }
    let refillAt = Infinity;
    let refillAmount = 0;
    for (const c of chats.filter((x) => x.at >= from && x.at < to)) {
      if (refillAt <= c.at) {
        issuances.push({ at: refillAt, amount: refillAmount });
        held += refillAmount;
        refillAt = Infinity;
        refillAmount = 0;
      }
      const k = Math.min(c.amount, held);
      if (k < c.amount) continue;
      held -= k;
      redemptions.push({ at: c.at, amount: k });
      refillAmount = poolSize - held;
      if (refillAt === Infinity) refillAt = c.at + (1 + 10 * rng()) * MIN;
    }
    if (refillAt < to) {
      issuances.push({ at: refillAt, amount: refillAmount });
      held += refillAmount;
    }
  }
  return { issuances, redemptions };
}

/** Maximum-weight perfect matching (Hungarian algorithm, O(n^3)); returns col for each row. */
export function bestAssignment(score: number[][]): number[] {
  const n = score.length;
  const max = Math.max(...score.flat());
  const cost = score.map((r) => r.map((v) => max - v));
  const u = new Array<number>(n + 1).fill(0);
  const v = new Array<number>(n + 1).fill(0);
  const p = new Array<number>(n + 1).fill(0);
  const way = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Array<number>(n + 1).fill(Infinity);
    const used = new Array<boolean>(n + 1).fill(false);
    do {
      used[j0] = true;
      const i0 = p[j0]!;
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = cost[i0 - 1]![j - 1]! - u[i0]! - v[j]!;
        if (cur < minv[j]!) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j]! < delta) {
          delta = minv[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]!]! += delta;
          v[j]! -= delta;
        } else minv[j]! -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0);
  }
  const rowToCol = new Array<number>(n).fill(-1);
  for (let j = 1; j <= n; j++) if (p[j]! > 0) rowToCol[p[j]! - 1] = j - 1;
  return rowToCol;
}

const BIN = 10 * MIN;

function series(events: readonly Event[], from: number, to: number): Float64Array {
  const s = new Float64Array(Math.ceil((to - from) / BIN));
  for (const e of events) if (e.at >= from && e.at < to) s[Math.floor((e.at - from) / BIN)]! += e.amount;
  return s;
}

/** Symmetric box smoothing of ±w bins, optionally shifted (issuance may lead the redemptions it pays for). */
function smooth(s: Float64Array, w: number): Float64Array {
  const out = new Float64Array(s.length);
  const prefix = new Float64Array(s.length + 1);
  for (let i = 0; i < s.length; i++) prefix[i + 1] = prefix[i]! + s[i]!;
  for (let i = 0; i < s.length; i++) out[i] = prefix[Math.min(s.length, i + w + 1)]! - prefix[Math.max(0, i - w)]!;
  return out;
}

export interface MatchReport {
  /** Accuracy of each adversary strategy. */
  byStrategy: Record<string, number>;
  /** The best of them (for a mean over windows: the strategy with the best mean). */
  best: number;
}

/**
 * The operator's attempt: for each strategy a score matrix (accounts × pseudonyms), the best
 * assignment, and the share of correct matches. `truth[i]` is account i's pseudonym.
 */
export function attack(accounts: readonly Behaviour[], truth: readonly number[], from: number, to: number): MatchReport {
  const n = accounts.length;
  const pseudonymOf = new Array<number>(n);
  truth.forEach((p, a) => (pseudonymOf[p] = a));
  // What the operator sees: issuance by account, redemption by pseudonym.
  const iss = accounts.map((b) => series(b.issuances, from, to));
  const red = truth.map((_, p) => series(accounts[pseudonymOf[p]!]!.redemptions, from, to));
  const vol = (s: Float64Array) => s.reduce((a, b) => a + b, 0);
  const strategies: Record<string, number[][]> = {};
  strategies['volume'] = iss.map((i) => red.map((r) => -Math.abs(vol(i) - vol(r))));
  for (const [name, w] of [
    ['timing±20min', 2],
    ['timing±1h', 6],
    ['timing±3h', 18],
  ] as const) {
    const sm = iss.map((i) => smooth(i.map((x) => (x > 0 ? 1 : 0)) as unknown as Float64Array, w));
    strategies[name] = sm.map((i) => red.map((r) => {
      const total = vol(r);
      if (total === 0) return 0;
      let dot = 0;
      for (let b = 0; b < r.length; b++) dot += Math.min(1, i[b]!) * r[b]!;
      return dot / total;
    }));
  }
  // Combined: rank-normalised volume + the timing score of ±1 h.
  const rankNorm = (m: number[][]) => m.map((row) => {
    const sorted = [...row].sort((a, b) => a - b);
    const rank = new Map<number, number>();
    sorted.forEach((v, k) => rank.set(v, k));
    return row.map((v) => rank.get(v)! / Math.max(1, row.length - 1));
  });
  const rv = rankNorm(strategies['volume']);
  const rt = rankNorm(strategies['timing±1h']!);
  strategies['volume+timing'] = rv.map((row, i) => row.map((v, j) => v + rt[i]![j]!));
  const byStrategy: Record<string, number> = {};
  for (const [name, m] of Object.entries(strategies)) {
    const a = bestAssignment(m);
    byStrategy[name] = a.filter((p, i) => p === truth[i]).length / n;
  }
  return { byStrategy, best: Math.max(...Object.values(byStrategy)) };
}

export interface SimResult {
  n: number;
  chance: number;
  /** Mean over the evaluated single days. */
  dayNew: MatchReport;
  dayOld: MatchReport;
  monthNew: MatchReport;
  monthOld: MatchReport;
}

function meanReports(rs: MatchReport[]): MatchReport {
  const byStrategy: Record<string, number> = {};
  for (const k of Object.keys(rs[0]!.byStrategy)) byStrategy[k] = rs.reduce((a, r) => a + r.byStrategy[k]!, 0) / rs.length;
  // The operator picks its strategy in advance (knowing the client's code): the best mean, not the best per window.
  return { byStrategy, best: Math.max(...Object.values(byStrategy)) };
}

/** N users over 30 days (+2 warm-up days); single days 3..`dayCount+2` and the whole month attacked. */
export function simulate(seed: number, o: { n?: number; days?: number; dayCount?: number; policy?: RefillPolicy } = {}): SimResult {
  const n = o.n ?? 50;
  const days = o.days ?? 30;
  const warm = 2;
  const rng = mulberry32(seed);
  const acts = Array.from({ length: n }, () => userActivity(rng, days + warm));
  const neu = acts.map((a) => newBehaviour(rng, a.chats, a.open, o.policy ? { policy: o.policy } : {}));
  const old = acts.map((a) => oldBehaviour(rng, a.chats, a.open));
  // A random secret permutation: account i spends under pseudonym truth[i].
  const truth = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [truth[i], truth[j]] = [truth[j]!, truth[i]!];
  }
  const dayCount = o.dayCount ?? 7;
  const dn: MatchReport[] = [];
  const dold: MatchReport[] = [];
  for (let d = warm; d < warm + dayCount; d++) {
    dn.push(attack(neu, truth, d * DAY, (d + 1) * DAY));
    dold.push(attack(old, truth, d * DAY, (d + 1) * DAY));
  }
  return {
    n,
    chance: 1 / n,
    dayNew: meanReports(dn),
    dayOld: meanReports(dold),
    monthNew: attack(neu, truth, warm * DAY, (warm + days) * DAY),
    monthOld: attack(old, truth, warm * DAY, (warm + days) * DAY),
  };
}

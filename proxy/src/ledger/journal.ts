/**
 * The ledger's journal: every balance change of an account, append-only, with
 * the balance after it. Pure functions here; the stores append atomically with
 * the change itself (one Lua script in Redis).
 */
export const JOURNAL_TYPES = ['purchase', 'grant', 'issue', 'issue_refund', 'stripe_refund', 'stripe_dispute'] as const;
export type JournalType = (typeof JOURNAL_TYPES)[number];

export interface JournalEntry {
  /** Store-assigned, increasing (Redis stream id in Redis). */
  id: string;
  type: JournalType;
  /** Signed change of the balance (credits). */
  delta: number;
  /** Balance after this entry. */
  balance: number;
  /** Milliseconds since the epoch. */
  at: number;
  /** What caused it: Checkout Session id, issuance request id, grant id, Stripe event id. */
  ref: string;
  /** Free text for support (admin grant reason, "owed 5, unspent 3"); never a secret. */
  note?: string;
}

export interface LedgerCheck {
  ok: boolean;
  balance: number;
  recomputed: number;
  entries: number;
  problems: string[];
}

/**
 * Recomputes the balance from the journal and checks it against the stored
 * balance: the running sum must match each entry's recorded balance, never go
 * negative, and end at the stored balance.
 */
export function checkJournal(entries: readonly JournalEntry[], storedBalance: number): LedgerCheck {
  const problems: string[] = [];
  let sum = 0;
  for (const e of entries) {
    sum += e.delta;
    if (sum !== e.balance) problems.push(`entry ${e.id} (${e.type}) records balance ${e.balance}, running sum is ${sum}`);
    if (sum < 0) problems.push(`entry ${e.id} (${e.type}) makes the balance negative (${sum})`);
  }
  if (sum !== storedBalance) problems.push(`stored balance ${storedBalance} differs from the journal's ${sum}`);
  return { ok: problems.length === 0, balance: storedBalance, recomputed: sum, entries: entries.length, problems };
}

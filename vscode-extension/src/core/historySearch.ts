/**
 * Search in the local chat history (the search runs on this machine, over the decrypted
 * history in memory; nothing is sent). Pure.
 */
import type { Conversation } from './history.js';

export interface HistoryHit {
  id: string;
  title: string;
  /** Where the first term was found, with a little text around it. */
  snippet: string;
  /** When the conversation was last written to. */
  at: number;
  /** How many times the terms occur in it. */
  matches: number;
}

const SNIPPET_BEFORE = 30;
const SNIPPET_LENGTH = 100;

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function count(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

function snippetAround(text: string, at: number, length: number): string {
  const start = Math.max(0, at - SNIPPET_BEFORE);
  const end = Math.min(text.length, start + SNIPPET_LENGTH + length);
  return `${start > 0 ? '…' : ''}${text.slice(start, end)}${end < text.length ? '…' : ''}`;
}

/**
 * Conversations that contain every term of the query (case-insensitive, in the title, a
 * message or an attached file's path), best first: a term in the title, then more
 * occurrences, then the most recent. An empty query lists every conversation, newest first.
 */
export function searchHistory(conversations: readonly Conversation[], query: string, limit = 50): HistoryHit[] {
  const terms = query.toLowerCase().split(/\s+/).filter(Boolean);
  const hits: (HistoryHit & { inTitle: boolean })[] = [];
  for (const c of conversations) {
    if (c.messages.length === 0) continue;
    const at = c.messages.at(-1)?.at ?? c.createdAt;
    const texts = c.messages.map((m) => oneLine([m.content, ...(m.files ?? []).map((f) => f.path)].join(' ')));
    const lower = texts.map((t) => t.toLowerCase());
    const title = c.title.toLowerCase();
    if (terms.length === 0) {
      hits.push({ id: c.id, title: c.title, snippet: snippetAround(texts[0] ?? '', 0, 0), at, matches: 0, inTitle: false });
      continue;
    }
    let matches = 0;
    let all = true;
    for (const t of terms) {
      const n = count(title, t) + lower.reduce((sum, l) => sum + count(l, t), 0);
      if (n === 0) all = false;
      matches += n;
    }
    if (!all) continue;
    const first = terms[0]!;
    const i = lower.findIndex((l) => l.includes(first));
    const snippet = i >= 0 ? snippetAround(texts[i]!, lower[i]!.indexOf(first), first.length) : snippetAround(texts[0] ?? '', 0, 0);
    hits.push({ id: c.id, title: c.title, snippet, at, matches, inTitle: terms.some((t) => title.includes(t)) });
  }
  hits.sort((a, b) => Number(b.inTitle) - Number(a.inTitle) || b.matches - a.matches || b.at - a.at);
  return hits.slice(0, limit).map(({ inTitle: _, ...h }) => h);
}

/**
 * `#file` context: workspace files the user attached to a message, sent as a clearly
 * delimited block in that message's text (and nowhere else). Pure, no Node or DOM imports: the
 * host assembles requests with it and the webview's cost preview counts with the same code.
 */

/** One attached file: its workspace-relative path (never an absolute one: it can name the user) and its text. */
export interface FileContext {
  path: string;
  text: string;
}

/** Caps: a file, all files of one message, and how many (the server's hard cap is 4 MiB per request). */
export const MAX_FILE_BYTES = 200_000;
export const MAX_CONTEXT_BYTES = 500_000;
export const MAX_FILES = 20;

const encoder = new TextEncoder();
export function utf8Bytes(text: string): number {
  return encoder.encode(text).length;
}

export function formatBytes(n: number): string {
  return n >= 1_000_000 ? `${(n / 1_000_000).toFixed(1)} MB` : n >= 1000 ? `${Math.round(n / 1000)} kB` : `${n} B`;
}

/** The language tag of a fence, from the file's extension (a hint for the model only). */
function langOf(path: string): string {
  const m = /\.([A-Za-z0-9+_-]{1,12})$/.exec(path);
  return m ? m[1]!.toLowerCase() : '';
}

/** A fence longer than any backtick run inside the text, so the file cannot close it early. */
function fenceFor(text: string): string {
  let longest = 0;
  for (const run of text.match(/`+/g) ?? []) longest = Math.max(longest, run.length);
  return '`'.repeat(Math.max(3, longest + 1));
}

/**
 * The text a message is sent as: the attached files first, each between a header line and a
 * fence, then the user's own words after a closing line. Without files, the prompt unchanged.
 */
export function withContext(prompt: string, files: readonly FileContext[] | undefined): string {
  if (!files || files.length === 0) return prompt;
  const blocks = files.map((f) => {
    const fence = fenceFor(f.text);
    return `File: ${f.path}\n${fence}${langOf(f.path)}\n${f.text}${f.text.endsWith('\n') ? '' : '\n'}${fence}`;
  });
  return `<attached-files count="${files.length}">\n${blocks.join('\n\n')}\n</attached-files>\n\n${prompt}`;
}

/** Why a file cannot be attached (plain words with what to do instead), or undefined if it can. */
export function attachmentProblem(attached: readonly FileContext[], candidate: { path: string; bytes: number; binary: boolean }): string | undefined {
  if (attached.some((f) => f.path === candidate.path)) return `${candidate.path} is attached already.`;
  if (candidate.binary) return `${candidate.path} is not a text file; only text files can be attached.`;
  if (candidate.bytes > MAX_FILE_BYTES) {
    return `${candidate.path} is ${formatBytes(candidate.bytes)}; a file can be attached up to ${formatBytes(MAX_FILE_BYTES)}. Select the part you need and use "Send Selection to Chat".`;
  }
  if (attached.length >= MAX_FILES) return `At most ${MAX_FILES} files can be attached to one message.`;
  const total = attached.reduce((n, f) => n + utf8Bytes(f.text), 0) + candidate.bytes;
  if (total > MAX_CONTEXT_BYTES) {
    return `With ${candidate.path} the attached files would be ${formatBytes(total)}; one message can carry up to ${formatBytes(MAX_CONTEXT_BYTES)} of files. Remove one first.`;
  }
  return undefined;
}

/** A file's bytes look binary (a NUL in the first 8 kB, as git decides). */
export function looksBinary(bytes: Uint8Array): boolean {
  return bytes.subarray(0, 8000).includes(0);
}

/**
 * The `#query` being typed at the caret (`#` at the start or after a space, then no space),
 * or undefined. `start` is the index of the `#`.
 */
export function hashQueryAt(text: string, caret: number): { query: string; start: number } | undefined {
  const m = /(?:^|\s)#([^\s#]*)$/.exec(text.slice(0, caret));
  if (!m) return undefined;
  return { query: m[1]!, start: caret - m[1]!.length - 1 };
}

/**
 * Workspace paths matching a query, best first: the file name starting with the query, then
 * the name containing it, then the path containing it, then the query's characters in order
 * in the path. Case-insensitive; dependency and VCS folders are left out.
 */
export function matchFiles(paths: readonly string[], query: string, limit = 20): string[] {
  const q = query.toLowerCase();
  const scored: { path: string; score: number }[] = [];
  for (const path of paths) {
    if (/(^|\/)(node_modules|\.git)\//.test(path)) continue;
    const p = path.toLowerCase();
    const name = p.slice(p.lastIndexOf('/') + 1);
    const score = !q ? 4 : name.startsWith(q) ? 0 : name.includes(q) ? 1 : p.includes(q) ? 2 : isSubsequence(q, p) ? 3 : -1;
    if (score >= 0) scored.push({ path, score });
  }
  scored.sort((a, b) => a.score - b.score || a.path.length - b.path.length || a.path.localeCompare(b.path));
  return scored.slice(0, limit).map((s) => s.path);
}

function isSubsequence(q: string, s: string): boolean {
  let i = 0;
  for (const ch of s) if (ch === q[i]) i++;
  return i === q.length;
}

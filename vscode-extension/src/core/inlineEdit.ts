/**
 * Inline edits: the one message sent for "Edit selection…" and how the new code is read back
 * from the answer. Pure: the host (vscode/inlineEdit.ts) sends it over the Tor redemption path
 * like a chat message and shows the result as a diff the user accepts or rejects.
 */

export interface EditRequest {
  /** What the user asked for, in their words. */
  instruction: string;
  /** Workspace-relative path (never absolute: it can name the user) and the editor's language id. */
  path: string;
  languageId: string;
  /** The code to change (the selection, or the whole file without one). */
  code: string;
  wholeFile: boolean;
}

function fenceFor(text: string): string {
  let longest = 0;
  for (const run of text.match(/`+/g) ?? []) longest = Math.max(longest, run.length);
  return '`'.repeat(Math.max(3, longest + 1));
}

/** The message: the instruction, the code in a fence, and the answer format asked for. */
export function editPrompt(r: EditRequest): string {
  const fence = fenceFor(r.code);
  const what = r.wholeFile ? `the whole file ${r.path}` : `this part of ${r.path}`;
  return [
    `Edit ${what} (${r.languageId}) as asked below.`,
    'Reply with the complete replacement code in one fenced code block and nothing else: no explanation, keep the indentation and style, change only what the instruction needs.',
    '',
    `Instruction: ${r.instruction.trim()}`,
    '',
    `${fence}${r.languageId}`,
    r.code.endsWith('\n') ? r.code.slice(0, -1) : r.code,
    fence,
  ].join('\n');
}

/**
 * The replacement code in an answer: the first fenced block (the longest one when the model
 * wrapped several), or the whole answer when it has none. Ends with a newline exactly when the
 * original did, so accepting the edit does not join or split lines at its end.
 */
export function extractEditedCode(answer: string, original: string): string {
  const blocks: string[] = [];
  const re = /^(`{3,}|~{3,})[^\n]*\n(?:([\s\S]*?)\n)?\1[ \t]*$/gm;
  for (let m = re.exec(answer); m; m = re.exec(answer)) blocks.push(m[2] ?? '');
  let code = blocks.length === 0 ? answer.trim() : blocks.length === 1 ? blocks[0]! : blocks.reduce((a, b) => (b.length > a.length ? b : a));
  code = code.replace(/\n+$/, '');
  return original.endsWith('\n') ? `${code}\n` : code;
}

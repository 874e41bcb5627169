/**
 * What the chat does to editors and the outside world: insert at the cursor, open a link (with
 * a warning: outside Tor), and "Apply as diff" proposals shown with vscode.diff and written only
 * when the user accepts them.
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';

/** A proposed text for `target`, made from its text `base`. */
interface Proposal {
  target: vscode.Uri;
  text: string;
  base: string;
}

/**
 * Proposed file contents for "Apply as diff" and inline edits, served read-only under the
 * llmtor-proposal: scheme (in memory, never written anywhere until the user accepts).
 */
export class ProposalStore implements vscode.TextDocumentContentProvider {
  static readonly scheme = 'llmtor-proposal';
  private readonly texts = new Map<string, Proposal>();
  private readonly emitter = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.emitter.event;

  put(target: vscode.Uri, text: string, base: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: ProposalStore.scheme, path: `/${randomUUID()}/${target.path.split('/').pop() ?? 'file'}` });
    this.texts.set(uri.toString(), { target, text, base });
    this.emitter.fire(uri);
    return uri;
  }
  get(uri: vscode.Uri): Proposal | undefined {
    return this.texts.get(uri.toString());
  }
  delete(uri: vscode.Uri): void {
    this.texts.delete(uri.toString());
  }
  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString())?.text ?? '';
  }
}
export const proposals = new ProposalStore();

export class EditorActions implements vscode.Disposable {
  /** The last focused text editor ("insert at cursor" from a webview that has the focus). */
  lastEditor: vscode.TextEditor | undefined = vscode.window.activeTextEditor;
  private readonly sub = vscode.window.onDidChangeActiveTextEditor((e) => {
    if (e) this.lastEditor = e;
  });

  /** The active editor, or the last one when a webview has the focus. */
  editor(): vscode.TextEditor | undefined {
    return vscode.window.activeTextEditor ?? this.lastEditor;
  }

  async insertAtCursor(text: string): Promise<void> {
    const editor = this.editor();
    if (!editor) {
      void vscode.window.showWarningMessage('Open a text editor to insert the code into.');
      return;
    }
    await editor.edit((b) => {
      for (const s of editor.selections) b.replace(s, text);
    });
  }

  /** A link in an answer opens in the browser, outside Tor: say so and ask first. */
  async openLink(url: string): Promise<void> {
    let parsed: vscode.Uri;
    try {
      if (!/^(https?:|mailto:)/i.test(url)) return;
      parsed = vscode.Uri.parse(url, true);
    } catch {
      return;
    }
    const open = 'Open outside Tor';
    const ok = await vscode.window.showWarningMessage(
      `This link opens in your browser over the normal network, NOT over Tor: the site (and your network) sees your IP address, and the link itself may identify this chat.\n\n${url}`,
      { modal: true },
      open,
    );
    if (ok === open) await vscode.env.openExternal(parsed);
  }

  /**
   * "Apply as diff": the active editor's text with the code in place of its selection (or
   * instead of the whole text without a selection), shown with vscode.diff; "Accept" in the
   * diff's title bar writes it (llmtor.acceptDiff).
   */
  async applyAsDiff(code: string): Promise<void> {
    const editor = this.editor();
    if (!editor) {
      void vscode.window.showWarningMessage('Open the file to change first; the diff compares it with the answer\'s code.');
      return;
    }
    await showProposal(editor.document, editor.selection, code);
  }

  dispose(): void {
    this.sub.dispose();
  }
}

/** Opens vscode.diff of the document against itself with `range` replaced by `code` (the whole text for an empty range). */
export async function showProposal(doc: vscode.TextDocument, range: vscode.Range, code: string, title = 'LLM-Tor suggestion'): Promise<vscode.Uri> {
  const base = doc.getText();
  const proposed = range.isEmpty ? code : doc.getText(new vscode.Range(doc.positionAt(0), range.start)) + code + doc.getText(new vscode.Range(range.end, doc.positionAt(base.length)));
  const uri = proposals.put(doc.uri, proposed, base);
  await vscode.commands.executeCommand('vscode.diff', doc.uri, uri, `${doc.uri.path.split('/').pop() ?? 'file'} ↔ ${title}`);
  return uri;
}

/** The proposal shown in the active diff (or the one given by a title-bar button). */
function proposalOf(arg: unknown): { uri: vscode.Uri; p: Proposal } | undefined {
  const uri = arg instanceof vscode.Uri ? arg : vscode.window.activeTextEditor?.document.uri;
  const p = uri && proposals.get(uri);
  return uri && p ? { uri, p } : undefined;
}

async function closeDiffsOf(uri: vscode.Uri): Promise<void> {
  const diffs = vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputTextDiff && t.input.modified.toString() === uri.toString());
  await vscode.window.tabGroups.close(diffs);
}

/**
 * "Accept" (llmtor.acceptDiff): writes the proposal into the file — only if the file still has
 * the text the proposal was made from, so edits made meanwhile are never overwritten.
 */
export async function acceptProposal(arg?: unknown): Promise<void> {
  const found = proposalOf(arg);
  if (!found) return;
  const { uri, p } = found;
  const doc = await vscode.workspace.openTextDocument(p.target);
  if (doc.getText() !== p.base) {
    void vscode.window.showWarningMessage('The file changed after this suggestion was made; it was not applied. Ask again for a suggestion against the current text.');
    return;
  }
  const edit = new vscode.WorkspaceEdit();
  edit.replace(p.target, new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length)), p.text);
  await vscode.workspace.applyEdit(edit);
  // Close the suggestion's diff (wherever it is), then show the changed file.
  await closeDiffsOf(uri);
  proposals.delete(uri);
  await vscode.window.showTextDocument(doc);
}

/** "Reject" (llmtor.rejectDiff): closes the diff; the file was never touched. */
export async function rejectProposal(arg?: unknown): Promise<void> {
  const found = proposalOf(arg);
  if (!found) return;
  await closeDiffsOf(found.uri);
  proposals.delete(found.uri);
  await vscode.window.showTextDocument(found.p.target);
}

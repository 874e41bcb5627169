/**
 * What the chat does to editors and the outside world: insert at the cursor, open a link (with
 * a warning: outside Tor), and "Apply as diff" proposals shown with vscode.diff and written only
 * when the user accepts them.
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';

/**
 * Proposed file contents for "Apply as diff" and inline edits, served read-only under the
 * llmtor-proposal: scheme (in memory, never written anywhere until the user accepts).
 */
export class ProposalStore implements vscode.TextDocumentContentProvider {
  static readonly scheme = 'llmtor-proposal';
  private readonly texts = new Map<string, { target: vscode.Uri; text: string }>();
  private readonly emitter = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.emitter.event;

  put(target: vscode.Uri, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: ProposalStore.scheme, path: `/${randomUUID()}/${target.path.split('/').pop() ?? 'file'}` });
    this.texts.set(uri.toString(), { target, text });
    this.emitter.fire(uri);
    return uri;
  }
  get(uri: vscode.Uri): { target: vscode.Uri; text: string } | undefined {
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
  const proposed = range.isEmpty ? code : doc.getText(new vscode.Range(doc.positionAt(0), range.start)) + code + doc.getText(new vscode.Range(range.end, doc.positionAt(doc.getText().length)));
  const uri = proposals.put(doc.uri, proposed);
  await vscode.commands.executeCommand('vscode.diff', doc.uri, uri, `${doc.uri.path.split('/').pop() ?? 'file'} ↔ ${title}`);
  return uri;
}

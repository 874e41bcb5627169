/**
 * "Edit Selection…" (llmtor.editSelection): asks for an instruction, sends the selected code
 * (or the whole file without a selection) with it over the same Tor redemption path as a chat
 * message, and shows the answer as a diff. The file is written only when the user accepts it
 * (llmtor.acceptDiff); rejecting closes the diff. Not kept in the chat history.
 */
import * as vscode from 'vscode';
import { formatBytes, MAX_FILE_BYTES, utf8Bytes } from '../core/fileContext.js';
import { editPrompt, extractEditedCode } from '../core/inlineEdit.js';
import { NoReadyTokensError } from '../core/llmtorClient.js';
import type { Controller } from './controller.js';
import { showProposal } from './editorActions.js';
import { errorText } from './explain.js';
import { shownPath } from './fileAttachments.js';

export async function editSelection(c: Controller): Promise<void> {
  const editor = vscode.window.activeTextEditor ?? c.editors.lastEditor;
  if (!editor) {
    void vscode.window.showWarningMessage('Open a file and select the code to edit first.');
    return;
  }
  const doc = editor.document;
  const wholeFile = editor.selection.isEmpty;
  const range = wholeFile ? new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length)) : new vscode.Range(editor.selection.start, editor.selection.end);
  const code = doc.getText(range);
  if (utf8Bytes(code) > MAX_FILE_BYTES) {
    void vscode.window.showWarningMessage(`The ${wholeFile ? 'file' : 'selection'} is ${formatBytes(utf8Bytes(code))}; an edit can take up to ${formatBytes(MAX_FILE_BYTES)}. Select a smaller part.`);
    return;
  }
  if (!c.signedIn) {
    void vscode.window.showWarningMessage('Create an LLM-Tor account or sign in first.', 'Account…').then((a) => a && vscode.commands.executeCommand('llmtor.account'));
    return;
  }
  const instruction = await vscode.window.showInputBox({
    title: `LLM-Tor: edit ${wholeFile ? 'the file' : 'the selection'}`,
    prompt: `What should change? Sent over Tor with the ${wholeFile ? 'whole file' : 'selected code'} only; you review the change as a diff before anything is written.`,
    placeHolder: 'e.g. handle the error case, add types, rename x to count',
    ignoreFocusOut: true,
  });
  if (!instruction?.trim()) return;
  const version = doc.version;
  const content = editPrompt({ instruction, path: shownPath(doc.uri), languageId: doc.languageId, code, wholeFile });
  const abort = new AbortController();
  try {
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'LLM-Tor: editing over Tor', cancellable: true }, async (progress, token) => {
      token.onCancellationRequested(() => abort.abort());
      await c.tor.ensureStarted();
      if (c.models.length === 0) c.models = await c.client.models(true);
      const model = c.currentModel();
      if (!model) throw new Error('the server offers no models');
      progress.report({ message: 'waiting for the answer…' });
      let received = 0;
      const answer = await c.client.send(model, [{ role: 'user', content }], {
        signal: abort.signal,
        onDelta: (d) => {
          received += d.length;
          progress.report({ message: `${received} characters received` });
        },
      });
      return answer;
    });
    if (abort.signal.aborted) return;
    if (doc.version !== version) {
      void vscode.window.showWarningMessage('The file changed while the edit was being written; it was not shown. Run the edit again.');
      return;
    }
    await showProposal(doc, range, extractEditedCode(r.content, code), 'LLM-Tor edit');
    void vscode.window.showInformationMessage(`LLM-Tor: review the edit (${r.credits} credit${r.credits === 1 ? '' : 's'}). Accept (✓ in the diff's title bar, Ctrl+Alt+Enter) writes it; Reject (×) leaves the file as it is.`);
  } catch (e) {
    if (e instanceof NoReadyTokensError) {
      void vscode.window.showWarningMessage(`LLM-Tor: ${e.message} Nothing was sent. Open the chat to wait for tokens, or get tokens from the Account menu.`);
    } else if (!abort.signal.aborted) {
      void vscode.window.showErrorMessage(`LLM-Tor: ${errorText(e)}`);
    }
  } finally {
    await c.updateCounts();
  }
}

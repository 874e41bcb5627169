/**
 * "Search Chat History" (llmtor.searchHistory): a QuickPick over the local, encrypted history
 * (searched in memory on this machine; nothing is sent); picking a result reopens that chat.
 */
import * as vscode from 'vscode';
import { searchHistory as search } from '../core/historySearch.js';
import type { Controller } from './controller.js';

export async function searchHistory(c: Controller): Promise<void> {
  type Item = vscode.QuickPickItem & { id: string };
  const qp = vscode.window.createQuickPick<Item>();
  qp.title = 'LLM-Tor: search chat history (on this machine only)';
  qp.placeholder = 'Words to find in your chats';
  qp.matchOnDescription = false;
  qp.matchOnDetail = false;
  const refresh = () => {
    const hits = search(c.history.list(), qp.value);
    // alwaysShow: the search above decides what matches, not the QuickPick's own filter on the label.
    qp.items = hits.map((h) => ({ id: h.id, label: h.title, description: `${new Date(h.at).toLocaleString()}${h.matches ? ` · ${h.matches} match${h.matches === 1 ? '' : 'es'}` : ''}`, detail: h.snippet, alwaysShow: true }));
    qp.title = hits.length || !qp.value ? 'LLM-Tor: search chat history (on this machine only)' : `LLM-Tor: no chat contains "${qp.value}"`;
  };
  refresh();
  const picked = await new Promise<Item | undefined>((resolve) => {
    qp.onDidChangeValue(refresh);
    qp.onDidAccept(() => {
      resolve(qp.selectedItems[0]);
      qp.hide();
    });
    qp.onDidHide(() => resolve(undefined));
    qp.show();
  });
  qp.dispose();
  if (!picked) return;
  if (c.chat.streamingId) {
    void vscode.window.showInformationMessage('An answer is still streaming; stop it or wait, then open the other chat.');
    return;
  }
  c.chat.selectChat(picked.id);
  await vscode.commands.executeCommand('llmtor.focusChat');
}

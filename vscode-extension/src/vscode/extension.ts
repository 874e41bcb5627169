/**
 * LLM-Tor for VS Code: entry point. Wires the controller (state and actions), the chat
 * views, the status bar, the commands and — where VS Code's chat API exists — an @llmtor
 * chat participant.
 */
import * as vscode from 'vscode';
import { NoReadyTokensError } from '../core/wallet.js';
import { Controller } from './controller.js';
import { acceptProposal, ProposalStore, proposals, rejectProposal } from './editorActions.js';
import { editSelection } from './inlineEdit.js';
import { searchHistory } from './historySearch.js';
import { errorText } from './explain.js';
import { TorManager } from './torManager.js';
import { ChatViewProvider, openChatPanel } from './webviewHost.js';

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const tor = new TorManager(context.globalStorageUri.fsPath);
  const c = new Controller(context, tor);
  controller = c;
  const provider = new ChatViewProvider(context.extensionUri, c);
  context.subscriptions.push(tor, c, vscode.window.registerWebviewViewProvider(ChatViewProvider.viewType, provider, { webviewOptions: { retainContextWhenHidden: true } }));

  // Status bar: Tor state and wallet.
  const status = vscode.window.createStatusBarItem('llmtor.status', vscode.StatusBarAlignment.Right, 100);
  status.name = 'LLM-Tor';
  status.command = 'llmtor.account';
  const renderStatus = () => {
    const t = tor.status;
    const icon = t.kind === 'ready' ? '$(shield)' : t.kind === 'failed' ? '$(error)' : '$(sync~spin)';
    const torText = t.kind === 'ready' ? 'Tor' : t.kind === 'failed' ? 'Tor failed' : t.kind === 'bootstrapping' ? `Tor ${t.progress}%` : 'Tor…';
    const w = c.walletCounts;
    status.text = `${icon} ${torText} · $(key) ${w.ready}/${w.total}`;
    const bal = c.currentBalance;
    status.tooltip = `LLM-Tor — Tor: ${t.kind === 'failed' ? t.message : t.kind}\nWallet: ${w.total} tokens (${w.ready} ready)${bal !== undefined ? `\nBalance: ${bal} credits` : ''}`;
    status.backgroundColor = t.kind === 'failed' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  };
  renderStatus();
  status.show();
  context.subscriptions.push(status, c.onDidChangeState(renderStatus), tor.onDidChange(renderStatus));

  const reg = (id: string, fn: (...a: unknown[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  context.subscriptions.push(vscode.workspace.registerTextDocumentContentProvider(ProposalStore.scheme, proposals));
  const focusChat = async () => {
    await vscode.commands.executeCommand('llmtor.chat.focus');
    c.focusInput();
  };
  reg('llmtor.openChat', focusChat);
  reg('llmtor.focusChat', focusChat);
  reg('llmtor.stop', () => c.chat.stop());
  reg('llmtor.account', () => c.account.accountMenu());
  reg('llmtor.openSettings', () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:llmtor.llmtor-vscode'));
  reg('llmtor.acceptDiff', (arg?: unknown) => acceptProposal(arg));
  reg('llmtor.rejectDiff', (arg?: unknown) => rejectProposal(arg));
  reg('llmtor.editSelection', () => editSelection(c));
  reg('llmtor.searchHistory', () => searchHistory(c));
  reg('llmtor.openChatInEditor', () => openChatPanel(context.extensionUri, c));
  reg('llmtor.newChat', async () => {
    c.chat.newChat();
    await focusChat();
  });
  reg('llmtor.createAccount', () => c.account.createAccount().then(() => vscode.commands.executeCommand('llmtor.chat.focus')));
  reg('llmtor.signIn', async () => {
    const key = await vscode.window.showInputBox({ title: 'LLM-Tor account key', prompt: 'The digits you were shown when the account was created', password: true, ignoreFocusOut: true });
    if (key) await c.account.signIn(key);
  });
  reg('llmtor.signOut', () => c.account.signOut());
  reg('llmtor.buyCredits', () => c.account.buy());
  reg('llmtor.refreshBalance', () => c.refresh());
  reg('llmtor.getTokens', () => c.account.getTokens());
  reg('llmtor.revokeTransient', () => c.account.revokeTransient());
  reg('llmtor.resetKeyPins', () => c.account.resetKeyPins());
  reg('llmtor.restartTor', () => tor.restart().catch((e) => vscode.window.showErrorMessage(`LLM-Tor: ${errorText(e)}`)));
  reg('llmtor.clearHistory', () => c.clearHistory());
  reg('llmtor.sendSelection', async () => {
    const e = vscode.window.activeTextEditor;
    if (!e || e.selection.isEmpty) return;
    c.addContext(fence(e.document, e.document.getText(e.selection), `lines ${e.selection.start.line + 1}-${e.selection.end.line + 1}`));
    await focusChat();
  });
  reg('llmtor.sendFile', async () => {
    const e = vscode.window.activeTextEditor;
    if (!e) return;
    c.addContext(fence(e.document, e.document.getText()));
    await focusChat();
  });

  // `#file` context: the explorer's context menu passes the clicked file (and the selection).
  reg('llmtor.attachFile', async (arg?: unknown, all?: unknown) => {
    const uris = Array.isArray(all) && all.every((u) => u instanceof vscode.Uri) ? (all as vscode.Uri[]) : arg instanceof vscode.Uri ? [arg] : [];
    if (uris.length === 0) await c.files.pick();
    for (const u of uris) if (!(await c.files.attach(u))) break;
    await focusChat();
  });

  registerChatParticipant(context, c);
  await c.start();
}

/** Code as a fenced block with the file's name (not its path: the path can name the user). */
function fence(doc: vscode.TextDocument, text: string, where?: string): string {
  const name = doc.uri.path.split('/').pop() ?? 'file';
  const ticks = text.includes('```') ? '````' : '```';
  return `${name}${where ? ` (${where})` : ''}:\n${ticks}${doc.languageId}\n${text}\n${ticks}\n`;
}

/** `@llmtor` in VS Code's Chat view, where the API exists (not in code-server without Copilot). */
function registerChatParticipant(context: vscode.ExtensionContext, c: Controller): void {
  const chat = (vscode as { chat?: typeof vscode.chat }).chat;
  if (typeof chat?.createChatParticipant !== 'function') return;
  try {
    const participant = chat.createChatParticipant('llmtor.participant', async (request, chatContext, stream, token) => {
      const messages: { role: 'user' | 'assistant'; content: string }[] = [];
      for (const turn of chatContext.history) {
        if (turn instanceof vscode.ChatRequestTurn) messages.push({ role: 'user', content: turn.prompt });
        else if (turn instanceof vscode.ChatResponseTurn) {
          const text = turn.response.map((p) => (p instanceof vscode.ChatResponseMarkdownPart ? p.value.value : '')).join('');
          if (text) messages.push({ role: 'assistant', content: text });
        }
      }
      messages.push({ role: 'user', content: request.prompt });
      const abort = new AbortController();
      token.onCancellationRequested(() => abort.abort());
      try {
        await c.tor.ensureStarted();
        const model = (await c.client.models())[0]?.id;
        if (!model) throw new Error('the server offers no models');
        await c.client.send(vscode.workspace.getConfiguration('llmtor').get<string>('model') || model, messages, { signal: abort.signal, onDelta: (d) => stream.markdown(d) });
      } catch (e) {
        stream.markdown(e instanceof NoReadyTokensError ? `**LLM-Tor:** ${e.message} Open the LLM-Tor chat view to wait for tokens.` : `**LLM-Tor:** ${errorText(e)}`);
      }
    });
    participant.iconPath = vscode.Uri.joinPath(context.extensionUri, 'media', 'icon.svg');
    context.subscriptions.push(participant);
  } catch {
    // Registered without a matching contribution, or the API is proposed here: the webview is the UI.
  }
}

export function deactivate(): void {
  controller?.dispose();
}

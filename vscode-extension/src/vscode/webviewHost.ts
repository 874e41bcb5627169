/**
 * The chat webview's HTML (strict Content-Security-Policy: no inline script, only our
 * bundled script with a nonce and our stylesheet; no remote anything) and its message
 * wiring, for the sidebar view and the editor panel alike.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { fromWebviewSchema } from '../core/uiState.js';
import type { Controller } from './controller.js';

export function chatHtml(webview: vscode.Webview, extensionUri: vscode.Uri): string {
  const nonce = randomBytes(16).toString('base64');
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'out', 'webview.js'));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'out', 'webview.css'));
  const csp = [
    "default-src 'none'",
    `style-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
    `img-src ${webview.cspSource} data:`,
    `font-src ${webview.cspSource}`,
    "connect-src 'none'",
    "form-action 'none'",
    "frame-src 'none'",
    "base-uri 'none'",
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style.toString()}">
<title>LLM-Tor</title>
</head>
<body>
<div id="app" aria-live="polite"></div>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
}

/** Connects a webview to the controller; messages are checked before use. */
export function wireWebview(webview: vscode.Webview, extensionUri: vscode.Uri, controller: Controller): vscode.Disposable {
  webview.options = { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'out'), vscode.Uri.joinPath(extensionUri, 'media')] };
  webview.html = chatHtml(webview, extensionUri);
  const detach = controller.attach((m) => void webview.postMessage(m));
  const sub = webview.onDidReceiveMessage((m: unknown) => {
    // The webview is less trusted than the host (it renders model output): check every message.
    const parsed = fromWebviewSchema.safeParse(m);
    if (parsed.success) void controller.handle(parsed.data);
  });
  return vscode.Disposable.from(detach, sub);
}

export class ChatViewProvider implements vscode.WebviewViewProvider {
  static readonly viewType = 'llmtor.chat';
  view: vscode.WebviewView | undefined;
  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly controller: Controller,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const d = wireWebview(view.webview, this.extensionUri, this.controller);
    view.onDidDispose(() => {
      d.dispose();
      this.view = undefined;
    });
  }
}

export function openChatPanel(extensionUri: vscode.Uri, controller: Controller): vscode.WebviewPanel {
  const panel = vscode.window.createWebviewPanel('llmtor.chatPanel', 'LLM-Tor Chat', vscode.ViewColumn.Beside, { enableScripts: true, retainContextWhenHidden: true });
  const d = wireWebview(panel.webview, extensionUri, controller);
  panel.onDidDispose(() => d.dispose());
  return panel;
}

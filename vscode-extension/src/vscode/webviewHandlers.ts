/** What each message from a chat webview does (uiState.ts's handler type checks the table is total). */
import * as vscode from 'vscode';
import type { FromWebviewHandlers } from '../core/uiState.js';
import type { Controller } from './controller.js';

export function webviewHandlers(c: Controller): FromWebviewHandlers {
  return {
    ready: () => c.publish(),
    send: (m) => c.chat.send(m.text),
    stop: () => c.chat.stop(),
    regenerate: () => c.chat.regenerate(),
    edit: (m) => c.chat.edit(m.id, m.text),
    delete: (m) => c.chat.delete(m.id),
    newChat: () => c.chat.newChat(),
    selectChat: (m) => c.chat.selectChat(m.id),
    selectModel: (m) => c.chat.selectModel(m.id),
    createAccount: () => c.account.createAccount(),
    signIn: () => vscode.commands.executeCommand('llmtor.signIn'),
    account: () => c.account.accountMenu(),
    wait: () => c.chat.waitForTokens(),
    cancelWait: () => c.chat.cancelWait(),
    dismissKey: () => c.dismissKey(),
    dismissError: () => c.dismissError(),
    command: (m) => vscode.commands.executeCommand(m.command),
    copy: (m) => vscode.env.clipboard.writeText(m.text),
    insert: (m) => c.editors.insertAtCursor(m.text),
    applyDiff: (m) => c.editors.applyAsDiff(m.text),
    openLink: (m) => c.editors.openLink(m.text),
    fileQuery: (m) => c.files.query(m.query),
    attachFile: (m) => c.files.attachOffered(m.path),
    detachFile: (m) => c.files.detach(m.path),
    pickFiles: () => c.files.pick(),
  };
}

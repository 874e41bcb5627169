/**
 * `#file` context on the host side: lists workspace files for the composer's `#` completion and
 * the "+ File" picker, reads the ones the user picks, and holds them until the message is sent.
 * Nothing is read or sent on its own: a file is read only when the user attaches it, and its
 * text goes only into the message the user sends (over the Tor redemption path, like any prompt).
 */
import * as vscode from 'vscode';
import { attachmentProblem, formatBytes, looksBinary, matchFiles, MAX_FILE_BYTES, utf8Bytes, type FileContext } from '../core/fileContext.js';
import type { Controller } from './controller.js';

/** The workspace listing is reused for a short while (a `#` query per keystroke). */
const LIST_TTL_MS = 10_000;
const MAX_LISTED = 5000;

/**
 * A file's name as the model sees it: relative to the workspace; for a file outside it, only its
 * name (an absolute path can name the user: /home/<name>/…).
 */
export function shownPath(uri: vscode.Uri): string {
  const rel = vscode.workspace.asRelativePath(uri, (vscode.workspace.workspaceFolders?.length ?? 0) > 1);
  return rel.startsWith('/') || /^[A-Za-z]:[\\/]/.test(rel) || rel === uri.fsPath ? (uri.path.split('/').pop() ?? 'file') : rel;
}

export class FileAttachments {
  /** Files attached to the message being written. */
  pending: FileContext[] = [];
  /** Paths offered to the webview, so it can attach only those (it renders model output). */
  private readonly offered = new Map<string, vscode.Uri>();
  private listing: { at: number; files: Map<string, vscode.Uri> } | undefined;

  constructor(private readonly c: Controller) {}

  private async workspaceFiles(): Promise<Map<string, vscode.Uri>> {
    if (this.listing && Date.now() - this.listing.at < LIST_TTL_MS) return this.listing.files;
    const uris = await vscode.workspace.findFiles('**/*', '**/{node_modules,.git}/**', MAX_LISTED);
    const files = new Map<string, vscode.Uri>();
    for (const u of uris) files.set(shownPath(u), u);
    this.listing = { at: Date.now(), files };
    return files;
  }

  /** Answers a `#query` from the composer with matching workspace paths. */
  async query(query: string): Promise<void> {
    const files = await this.workspaceFiles();
    const paths = matchFiles([...files.keys()], query);
    for (const p of paths) this.offered.set(p, files.get(p)!);
    this.c.post({ type: 'fileMatches', query, paths });
  }

  /** From the webview: only a path it was offered. */
  async attachOffered(path: string): Promise<void> {
    const uri = this.offered.get(path);
    if (uri) await this.attach(uri);
  }

  /** Reads a file the user picked and attaches it, or says plainly why not. */
  async attach(uri: vscode.Uri): Promise<boolean> {
    const path = shownPath(uri);
    let problem: string | undefined;
    let text = '';
    try {
      const stat = await vscode.workspace.fs.stat(uri);
      // Refused before reading: a huge file is never loaded into memory.
      if (stat.size > MAX_FILE_BYTES) problem = attachmentProblem(this.pending, { path, bytes: stat.size, binary: false });
      else {
        const bytes = await vscode.workspace.fs.readFile(uri);
        text = new TextDecoder().decode(bytes);
        problem = attachmentProblem(this.pending, { path, bytes: utf8Bytes(text), binary: looksBinary(bytes) });
      }
    } catch (e) {
      problem = `${path} could not be read: ${(e as Error).message}`;
    }
    if (problem) {
      this.c.error = { text: problem };
      this.c.publish();
      return false;
    }
    this.pending = [...this.pending, { path, text }];
    this.c.publish();
    return true;
  }

  detach(path: string): void {
    this.pending = this.pending.filter((f) => f.path !== path);
    this.c.publish();
  }

  /** Takes the attachments for the message being sent. */
  take(): FileContext[] {
    const files = this.pending;
    this.pending = [];
    return files;
  }

  /** "+ File" and the command: a QuickPick of workspace files (several can be picked). */
  async pick(): Promise<void> {
    const files = await this.workspaceFiles();
    const items = matchFiles([...files.keys()], '', MAX_LISTED).map((p) => ({ label: p.slice(p.lastIndexOf('/') + 1), description: p, uri: files.get(p)! }));
    const picks = await vscode.window.showQuickPick(items, {
      title: `Attach files to the LLM-Tor message (sent with it only; up to ${formatBytes(MAX_FILE_BYTES)} each)`,
      canPickMany: true,
      matchOnDescription: true,
    });
    for (const p of picks ?? []) if (!(await this.attach(p.uri))) break;
  }
}

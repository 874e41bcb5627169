/**
 * Account, purchase and wallet actions (explicit user actions only: each identity call here
 * follows a click or a command, never activation or a send — docs/privacy.md "Issuance
 * timing"). The state they change lives in the Controller.
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import { ChatHistory } from '../core/history.js';
import { HISTORY_KEY_SECRET, HistoryCipher } from '../core/historyCipher.js';
import { DEFAULT_REFILL_POLICY } from '../core/refillPlan.js';
import { MAX_DIRECTORY_AGE_MS } from '../core/tokenMinter.js';
import type { Controller } from './controller.js';

export class AccountActions {
  constructor(private readonly c: Controller) {}

  async createAccount(): Promise<void> {
    await this.c.withBusy('Creating account…', async () => {
      this.c.accountKeyOnce = await this.c.client.createAccount();
      this.c.signedIn = true;
      await this.c.refresh();
    });
  }

  async signIn(key: string): Promise<void> {
    await this.c.withBusy('Signing in…', async () => {
      const info = await this.c.client.signIn(key);
      this.c.signedIn = true;
      this.c.balance = info.balance;
      await this.c.refresh();
    });
  }

  async signOut(): Promise<void> {
    const keep = 'Sign out, keep chat history';
    const wipe = 'Sign out and delete chat history';
    const ok = await vscode.window.showWarningMessage(
      'Sign out of LLM-Tor? The account key and every unused token are removed from this machine. Keep your account key to sign in again; unused tokens are lost. Your chat history (encrypted on this machine) can be deleted too.',
      { modal: true },
      keep,
      wipe,
    );
    if (ok !== keep && ok !== wipe) return;
    await this.c.client.signOut();
    if (ok === wipe) {
      await this.c.history.clear();
      // Without the key, any copy of the encrypted history (backups, synced profiles) is unreadable.
      await this.c.ctx.secrets.delete(HISTORY_KEY_SECRET);
      this.c.history = new ChatHistory(this.c.ctx.globalState, vscode.workspace.getConfiguration('llmtor').get<boolean>('history.enabled', true), Date.now, await HistoryCipher.fromSecrets(this.c.ctx.secrets));
    }
    this.c.signedIn = false;
    this.c.balance = undefined;
    this.c.accountKeyOnce = undefined;
    await this.c.updateCounts();
  }

  async buy(pack?: string): Promise<void> {
    let id = pack;
    if (!id) {
      const packs = await this.c.client.packs();
      const pick = await vscode.window.showQuickPick(
        packs.map((p) => ({ label: p.name, description: `${p.credits} credits, ${(p.amount / 100).toFixed(2)} ${p.currency.toUpperCase()}`, id: p.id })),
        { title: 'Buy LLM-Tor credits' },
      );
      if (!pick) return;
      id = pick.id;
    }
    const url = await this.c.withBusy('Starting checkout…', () => this.c.client.purchase(id!, `vscode-${randomUUID()}`));
    if (!url) return;
    await vscode.env.openExternal(vscode.Uri.parse(url));
    void vscode.window.showInformationMessage('Complete the payment in your browser; the balance updates when Stripe confirms it.', 'Refresh balance').then((a) => {
      if (a) void this.c.refresh();
    });
    // Stripe's webhook usually lands within seconds; poll a little.
    for (const delay of [5_000, 15_000, 45_000]) setTimeout(() => void this.c.refresh(), delay).unref();
  }

  // ---- wallet ----

  /**
   * "Get tokens now" (an explicit action). With a directory pinned over Tor recently, one
   * batch is fetched now; otherwise the directory is fetched now and the tokens at a random
   * later time (so the anonymous fetch and the issuance are not back to back).
   */
  async getTokens(): Promise<void> {
    this.c.refillText = 'Getting tokens…';
    await this.c.withBusy('Getting tokens…', async () =>
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'LLM-Tor: getting tokens' }, async () => {
        await this.c.tor.ensureStarted();
        await this.c.startSchedule();
        const pinned = (await this.c.client.pinned()).directory;
        if (!pinned || Date.now() - pinned.fetchedAt > MAX_DIRECTORY_AGE_MS) {
          await this.c.client.refreshDirectory();
          const gap = this.c.policy().directoryGapMs;
          this.c.scheduler?.wakeRefillWithin(gap, gap);
          void vscode.window.showInformationMessage(`LLM-Tor checked the issuer's keys over Tor. Tokens will be requested in ${span(gap)}–${span(2 * gap)}, not right away, so the two cannot be matched.`);
          return;
        }
        this.c.refillText = `Getting up to ${this.c.policy().batchSize} tokens (blinding, then one request)…`;
        this.c.publish();
        await this.c.client.refill();
        this.c.balance = (await this.c.client.account()).balance;
      }),
    ).finally(() => {
      this.c.refillText = undefined;
      this.c.publish();
    });
  }

  /** After a key-consistency alarm: forget pins and alarm, once the user decides to trust the server again. */
  async resetKeyPins(): Promise<void> {
    const ok = await vscode.window.showWarningMessage(
      'Reset LLM-Tor key pins? Issuance stopped because the issuer directory looked like an attempt to single you out. Reset only if you know why it changed (e.g. the operator announced a key change).',
      { modal: true },
      'Reset',
    );
    if (ok !== 'Reset') return;
    await this.c.client.resetPins();
    this.c.error = undefined;
    this.c.publish();
  }

  async revokeTransient(): Promise<void> {
    await this.c.withBusy('Revoking the transient token…', async () => {
      await this.c.tor.ensureStarted();
      await this.c.client.revokeTransient();
      await this.c.startSchedule();
      void vscode.window.showInformationMessage(
        `The transient abuse token was revoked (over Tor). A new one is requested at a later scheduled refill (at least ${Math.round(DEFAULT_REFILL_POLICY.revokeGapMs / 3_600_000)} h from now, on another connection), so the revocation cannot be tied to your account by timing. Until then chats wait.`,
      );
    });
  }

  /** Account, purchase and wallet: one QuickPick (view title, status bar), out of the chat's way. */
  async accountMenu(): Promise<void> {
    type Item = vscode.QuickPickItem & { run?: () => unknown };
    const w = this.c.counts;
    const items: Item[] = this.c.signedIn
      ? [
          { label: '$(credit-card) Buy credits…', description: this.c.balance !== undefined ? `balance ${this.c.balance} credits` : '', run: () => this.buy() },
          { label: '$(key) Get tokens now', description: `wallet ${w.total} tokens, ${w.ready} ready`, run: () => this.getTokens() },
          { label: '$(refresh) Refresh balance', run: () => this.c.withBusy('Refreshing…', () => this.c.refresh()) },
          { label: '', kind: vscode.QuickPickItemKind.Separator },
          { label: '$(shield) Revoke transient abuse token…', run: () => this.revokeTransient() },
          { label: '$(sign-out) Sign out…', description: 'forgets the key and unused tokens on this machine', run: () => this.signOut() },
        ]
      : [
          { label: '$(add) Create account', description: 'a random key: no e-mail, no name', run: () => this.createAccount() },
          { label: '$(sign-in) Sign in with an account key…', run: () => vscode.commands.executeCommand('llmtor.signIn') },
        ];
    const pick = await vscode.window.showQuickPick(items, { title: `LLM-Tor account — ${this.c.signedIn ? 'signed in' : 'not signed in'}` });
    await pick?.run?.();
  }
}

function span(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`;
}

/**
 * The extension's state and actions, shared by every chat view (sidebar view, editor panel)
 * and the status bar: account, wallet, Tor, models, the current chat, streaming.
 *
 * Privacy notes for this layer:
 * - Nothing identifying is logged (no output channel with request data at all).
 * - Identity calls happen only on an explicit user action or on the refill schedule
 *   (core/refillScheduler.ts), which starts on the first explicit use, never at activation,
 *   and never reacts to a send (docs/privacy.md "Issuance timing").
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import { ChatHistory, MemoryKeyValueStore } from '../core/history.js';
import { HISTORY_KEY_SECRET, HistoryCipher } from '../core/historyCipher.js';
import { ChallengeRefusedError, LlmTorClient, NoReadyTokensError } from '../core/llmtorClient.js';
import { RefillScheduler } from '../core/refillScheduler.js';
import { DEFAULT_REFILL_POLICY, type RefillPolicy } from '../core/refillPlan.js';
import { MAX_DIRECTORY_AGE_MS } from '../core/tokenMinter.js';
import type { ModelInfo } from '../core/redemptionApi.js';
import { KeyConsistencyError } from '../core/keyConsistency.js';
import { clearnetTransport, torTransport } from '../core/transport.js';
import { Wallet, type WalletCounts } from '../core/wallet.js';
import { describe as describeTor, type TorManager } from './torManager.js';

import { friendlyError, type FriendlyError } from '../core/friendlyErrors.js';
import { dispatch, type FromWebview, type FromWebviewHandlers, type ToWebview, type UiState } from '../core/uiState.js';

export type { FromWebview, ToWebview, UiState };

/** The model the user picked, kept per machine (a settings write could ask for a reload). */
const MODEL_CHOICE_KEY = 'llmtor.modelChoice';

export class Controller implements vscode.Disposable {
  client!: LlmTorClient;
  private wallet!: Wallet;
  history: ChatHistory;
  private balance: number | undefined;
  private signedIn = false;
  private counts: WalletCounts = { total: 0, ready: 0, nextReadyAt: undefined };
  private models: ModelInfo[] = [];
  private model: string | undefined;
  private streamingId: string | undefined;
  private abort: AbortController | undefined;
  private busy: string | undefined;
  private accountKeyOnce: string | undefined;
  private waiting: UiState['waiting'];
  private error: FriendlyError | undefined;
  private refillText: string | undefined;
  private scheduler: RefillScheduler | undefined;
  private readonly views = new Set<(m: ToWebview) => void>();
  private readonly stateEmitter = new vscode.EventEmitter<void>();
  readonly onDidChangeState = this.stateEmitter.event;
  private readonly disposables: vscode.Disposable[] = [];
  /** The last focused text editor ("insert at cursor" from a webview that has the focus). */
  lastEditor: vscode.TextEditor | undefined;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    readonly tor: TorManager,
  ) {
    // In memory until start() has the history key from SecretStorage (historyCipher.ts).
    this.history = new ChatHistory(new MemoryKeyValueStore(), false);
    this.buildClient();
    this.disposables.push(
      tor.onDidChange(() => this.publish()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('llmtor.history.enabled')) void this.history.setPersist(vscode.workspace.getConfiguration('llmtor').get<boolean>('history.enabled', true));
        if (e.affectsConfiguration('llmtor.wallet')) {
          const c = vscode.workspace.getConfiguration('llmtor.wallet');
          this.wallet.setTiming(c.get<number>('minAgeSeconds', 60) * 1000, c.get<number>('jitterSeconds', 120) * 1000);
        }
        if (['issuerUrl', 'redemptionUrl', 'issuerName', 'issuanceOverTor', 'directoryMirrorUrl', 'wallet.batchSize', 'wallet.lowWater', 'wallet.directoryGapSeconds'].some((k) => e.affectsConfiguration(`llmtor.${k}`))) {
          const wasStarted = this.scheduler?.isStarted;
          this.buildClient();
          if (wasStarted) void this.startSchedule();
        }
        if (e.affectsConfiguration('llmtor.tor')) void this.tor.restart().catch(() => undefined);
        if (e.affectsConfiguration('llmtor.model')) this.model = vscode.workspace.getConfiguration('llmtor').get<string>('model') || this.model;
        this.publish();
      }),
      vscode.window.onDidChangeActiveTextEditor((e) => {
        if (e) this.lastEditor = e;
      }),
    );
    this.lastEditor = vscode.window.activeTextEditor;
  }

  private buildClient(): void {
    const cfg = vscode.workspace.getConfiguration('llmtor');
    const issuerUrl = cfg.get<string>('issuerUrl', 'http://127.0.0.1:8080');
    const redemptionUrl = cfg.get<string>('redemptionUrl') || issuerUrl;
    const tor = torTransport(() => this.tor.socks());
    this.wallet = new Wallet(this.ctx.secrets, { minAgeMs: cfg.get<number>('wallet.minAgeSeconds', 900) * 1000, jitterMs: cfg.get<number>('wallet.jitterSeconds', 1800) * 1000 });
    this.wallet.onChange(() => void this.updateCounts());
    const issuerName = cfg.get<string>('issuerName');
    const mirror = cfg.get<string>('directoryMirrorUrl');
    this.scheduler?.stop();
    this.client = new LlmTorClient({
      issuerUrl,
      redemptionUrl,
      issuance: cfg.get<boolean>('issuanceOverTor', false) ? tor : clearnetTransport(),
      tor,
      wallet: this.wallet,
      secrets: this.ctx.secrets,
      batchSize: cfg.get<number>('wallet.batchSize', DEFAULT_REFILL_POLICY.batchSize),
      ...(issuerName ? { issuerName } : {}),
      ...(mirror ? { directoryMirrorUrl: mirror } : {}),
    });
    this.scheduler = new RefillScheduler({
      client: this.client,
      policy: this.policy(),
      onError: (e) => {
        if (e instanceof KeyConsistencyError || e instanceof ChallengeRefusedError) this.fail(e);
      },
      onStep: (step) => {
        if (step.balance !== undefined) this.balance = step.balance;
        this.publish();
      },
      onProgress: (text) => {
        this.refillText = text;
        this.publish();
      },
    });
    this.model = this.ctx.globalState.get<string>(MODEL_CHOICE_KEY) || cfg.get<string>('model') || this.model;
  }

  /**
   * Activation (the view or a command was opened): local state, Tor, and the model list over
   * Tor. No identity call: the balance and the refill schedule wait for an explicit action.
   */
  async start(): Promise<void> {
    const persist = vscode.workspace.getConfiguration('llmtor').get<boolean>('history.enabled', true);
    this.history = new ChatHistory(this.ctx.globalState, persist, Date.now, await HistoryCipher.fromSecrets(this.ctx.secrets));
    this.signedIn = !!(await this.client.accountKey());
    await this.updateCounts();
    this.publish();
    void this.tor
      .ensureStarted()
      .then(async () => {
        this.models = await this.client.models(true);
        this.publish();
      })
      .catch((e: Error) => this.fail(e));
  }

  private policy(): RefillPolicy {
    const cfg = vscode.workspace.getConfiguration('llmtor.wallet');
    return {
      ...DEFAULT_REFILL_POLICY,
      batchSize: cfg.get<number>('batchSize', DEFAULT_REFILL_POLICY.batchSize),
      lowWater: cfg.get<number>('lowWater', DEFAULT_REFILL_POLICY.lowWater),
      directoryGapMs: cfg.get<number>('directoryGapSeconds', DEFAULT_REFILL_POLICY.directoryGapMs / 1000) * 1000,
    };
  }

  /** The refill schedule starts on the first explicit use (refillScheduler.ts). */
  private async startSchedule(): Promise<void> {
    if (this.signedIn) await this.scheduler?.start();
  }

  attach(post: (m: ToWebview) => void): vscode.Disposable {
    this.views.add(post);
    post({ type: 'state', state: this.state() });
    return new vscode.Disposable(() => this.views.delete(post));
  }

  private post(m: ToWebview): void {
    for (const v of this.views) v(m);
  }

  state(): UiState {
    const t = this.tor.status;
    const conv = this.history.current();
    return {
      signedIn: this.signedIn,
      balance: this.balance,
      wallet: this.counts,
      tor: { kind: t.kind, text: describeTor(t) },
      models: this.models.map((m) => ({ id: m.id, priceCredits: m.priceCredits, bytesPerCredit: m.bytesPerCredit })),
      model: this.currentModel(),
      conversations: this.history.list().map((c) => ({ id: c.id, title: c.title })),
      currentId: conv.id,
      messages: conv.messages,
      streamingId: this.streamingId,
      busy: this.busy,
      refill: this.refillText,
      accountKeyOnce: this.accountKeyOnce,
      waiting: this.waiting,
      error: this.error,
      historyEnabled: vscode.workspace.getConfiguration('llmtor').get<boolean>('history.enabled', true),
    };
  }

  publish(): void {
    this.post({ type: 'state', state: this.state() });
    this.stateEmitter.fire();
  }

  get walletCounts(): WalletCounts {
    return this.counts;
  }
  get currentBalance(): number | undefined {
    return this.balance;
  }

  private currentModel(): string | undefined {
    if (this.model && (this.models.length === 0 || this.models.some((m) => m.id === this.model))) return this.model;
    return this.models[0]?.id;
  }

  private async updateCounts(): Promise<void> {
    this.counts = await this.wallet.counts();
    this.publish();
  }

  private fail(e: unknown): void {
    this.error = explain(e);
    this.publish();
    // A possible tagging attempt must be seen even with the view closed.
    if (e instanceof KeyConsistencyError || e instanceof ChallengeRefusedError) void vscode.window.showWarningMessage(`LLM-Tor stopped getting tokens: ${e.message}`);
  }

  private async withBusy<T>(label: string, fn: () => Promise<T>): Promise<T | undefined> {
    this.busy = label;
    this.error = undefined;
    this.publish();
    try {
      return await fn();
    } catch (e) {
      this.fail(e);
      return undefined;
    } finally {
      this.busy = undefined;
      this.publish();
    }
  }

  // ---- account ----

  /** Balance and models (an explicit action); starts the refill schedule. */
  async refresh(): Promise<void> {
    this.signedIn = !!(await this.client.accountKey());
    try {
      if (this.signedIn) this.balance = (await this.client.account()).balance;
      if (this.tor.status.kind === 'ready') this.models = await this.client.models(true);
      this.publish();
      await this.startSchedule();
    } catch (e) {
      this.fail(e);
    }
  }

  async createAccount(): Promise<void> {
    await this.withBusy('Creating account…', async () => {
      this.accountKeyOnce = await this.client.createAccount();
      this.signedIn = true;
      await this.refresh();
    });
  }

  async signIn(key: string): Promise<void> {
    await this.withBusy('Signing in…', async () => {
      const info = await this.client.signIn(key);
      this.signedIn = true;
      this.balance = info.balance;
      await this.refresh();
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
    await this.client.signOut();
    if (ok === wipe) {
      await this.history.clear();
      // Without the key, any copy of the encrypted history (backups, synced profiles) is unreadable.
      await this.ctx.secrets.delete(HISTORY_KEY_SECRET);
      this.history = new ChatHistory(this.ctx.globalState, vscode.workspace.getConfiguration('llmtor').get<boolean>('history.enabled', true), Date.now, await HistoryCipher.fromSecrets(this.ctx.secrets));
    }
    this.signedIn = false;
    this.balance = undefined;
    this.accountKeyOnce = undefined;
    await this.updateCounts();
  }

  async buy(pack?: string): Promise<void> {
    let id = pack;
    if (!id) {
      const packs = await this.client.packs();
      const pick = await vscode.window.showQuickPick(
        packs.map((p) => ({ label: p.name, description: `${p.credits} credits, ${(p.amount / 100).toFixed(2)} ${p.currency.toUpperCase()}`, id: p.id })),
        { title: 'Buy LLM-Tor credits' },
      );
      if (!pick) return;
      id = pick.id;
    }
    const url = await this.withBusy('Starting checkout…', () => this.client.purchase(id!, `vscode-${randomUUID()}`));
    if (!url) return;
    await vscode.env.openExternal(vscode.Uri.parse(url));
    void vscode.window.showInformationMessage('Complete the payment in your browser; the balance updates when Stripe confirms it.', 'Refresh balance').then((a) => {
      if (a) void this.refresh();
    });
    // Stripe's webhook usually lands within seconds; poll a little.
    for (const delay of [5_000, 15_000, 45_000]) setTimeout(() => void this.refresh(), delay).unref();
  }

  // ---- wallet ----

  /**
   * "Get tokens now" (an explicit action). With a directory pinned over Tor recently, one
   * batch is fetched now; otherwise the directory is fetched now and the tokens at a random
   * later time (so the anonymous fetch and the issuance are not back to back).
   */
  async getTokens(): Promise<void> {
    this.refillText = 'Getting tokens…';
    await this.withBusy('Getting tokens…', async () =>
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'LLM-Tor: getting tokens' }, async () => {
        await this.tor.ensureStarted();
        await this.startSchedule();
        const pinned = (await this.client.pinned()).directory;
        if (!pinned || Date.now() - pinned.fetchedAt > MAX_DIRECTORY_AGE_MS) {
          await this.client.refreshDirectory();
          const gap = this.policy().directoryGapMs;
          this.scheduler?.wakeRefillWithin(gap, gap);
          void vscode.window.showInformationMessage(`LLM-Tor checked the issuer's keys over Tor. Tokens will be requested in ${span(gap)}–${span(2 * gap)}, not right away, so the two cannot be matched.`);
          return;
        }
        this.refillText = `Getting up to ${this.policy().batchSize} tokens (blinding, then one request)…`;
        this.publish();
        await this.client.refill();
        this.balance = (await this.client.account()).balance;
      }),
    ).finally(() => {
      this.refillText = undefined;
      this.publish();
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
    await this.client.resetPins();
    this.error = undefined;
    this.publish();
  }

  async revokeTransient(): Promise<void> {
    await this.withBusy('Revoking the transient token…', async () => {
      await this.tor.ensureStarted();
      await this.client.revokeTransient();
      await this.startSchedule();
      void vscode.window.showInformationMessage(
        `The transient abuse token was revoked (over Tor). A new one is requested at a later scheduled refill (at least ${Math.round(DEFAULT_REFILL_POLICY.revokeGapMs / 3_600_000)} h from now, on another connection), so the revocation cannot be tied to your account by timing. Until then chats wait.`,
      );
    });
  }

  // ---- chat ----

  selectModel(id: string): void {
    this.model = id;
    void this.ctx.globalState.update(MODEL_CHOICE_KEY, id);
    this.publish();
  }

  async send(text: string): Promise<void> {
    if (!text.trim() || this.streamingId) return;
    this.history.add({ role: 'user', content: text });
    void this.startSchedule();
    await this.run();
  }

  async regenerate(): Promise<void> {
    if (this.streamingId) return;
    const left = this.history.truncateForRegenerate();
    if (!left) return;
    const lastUser = left.filter((m) => m.role === 'user').at(-1);
    if (lastUser?.error) this.history.update(lastUser.id, { error: undefined });
    await this.run();
  }

  async edit(id: string, text: string): Promise<void> {
    if (this.streamingId) return;
    if (!this.history.edit(id, text)) return;
    await this.run();
  }

  delete(id: string): void {
    if (this.streamingId === id) this.abort?.abort();
    this.history.delete(id);
    this.publish();
  }

  stop(): void {
    this.abort?.abort();
  }

  newChat(): void {
    this.abort?.abort();
    this.history.newConversation();
    this.publish();
  }

  selectChat(id: string): void {
    if (this.streamingId) return;
    this.history.select(id);
    this.publish();
  }

  /**
   * Answers the last user message. A prompt that got no answer (an error, a stop before the
   * first word, a cancelled wait) is marked unanswered: it stays visible, with the reason, but
   * is never sent again as part of a later request (edit or regenerate sends it again).
   */
  private async run(): Promise<void> {
    this.error = undefined;
    this.waiting = undefined;
    const prompt = this.history.current().messages.filter((m) => m.role === 'user').at(-1);
    const unanswered = (why: string) => {
      if (prompt) this.history.update(prompt.id, { error: why });
    };
    if (!this.signedIn) {
      unanswered(NOT_SENT);
      this.fail(new Error('Create an account or sign in first (the Account button above the chat).'));
      return;
    }
    const model = this.currentModel();
    const messages = this.history
      .current()
      .messages.filter((m) => !m.error)
      .map((m) => ({ role: m.role, content: m.content }));
    const answer = this.history.add({ role: 'assistant', content: '', ...(model ? { model } : {}) });
    this.streamingId = answer.id;
    const abort = new AbortController();
    this.abort = abort;
    this.publish();
    let content = '';
    try {
      await this.tor.ensureStarted();
      if (this.models.length === 0) this.models = await this.client.models(true);
      const useModel = model ?? this.currentModel();
      if (!useModel) throw new Error('the server offers no models');
      const r = await this.client.send(useModel, messages, {
        signal: abort.signal,
        onDelta: (d) => {
          content += d;
          this.post({ type: 'delta', id: answer.id, text: d });
        },
        onRetry: (e, attempt, of) => {
          // Said as soon as the proxy reports it, not after the retries.
          this.busy = `${explain(e).text.replace(/\.$/, '')} — retrying (${attempt} of ${of}) with the same tokens, no second charge…`;
          this.publish();
        },
      });
      this.history.update(answer.id, { content: r.content, credits: r.credits, model: useModel });
    } catch (e) {
      if (e instanceof NoReadyTokensError) {
        // The prompt waits for "Wait and send"; cancelWait() marks it unanswered.
        this.history.delete(answer.id);
        this.waiting = { needed: e.needed, ready: e.counts.ready, total: e.counts.total, nextReadyAt: e.counts.nextReadyAt, active: false };
      } else if (abort.signal.aborted) {
        if (content) this.history.update(answer.id, { content });
        else {
          this.history.delete(answer.id);
          unanswered('Stopped before an answer arrived (not sent again with your next message).');
        }
      } else {
        this.history.update(answer.id, { content, error: explain(e).text });
        if (!content) unanswered(NOT_ANSWERED);
        // A refused challenge may be a tagging attempt: a warning too, not only a line in the chat.
        if (e instanceof ChallengeRefusedError || e instanceof KeyConsistencyError) void vscode.window.showWarningMessage(`LLM-Tor: ${e.message}`);
      }
    } finally {
      this.streamingId = undefined;
      this.abort = undefined;
      this.busy = undefined;
      await this.updateCounts();
    }
  }

  /**
   * The user chose to wait for tokens: wait until enough tokens have aged, then send. It never
   * fetches tokens (a fetch right before a send would tie the two); with too few tokens it
   * waits for the scheduled refill, which the user can bring forward with "Get tokens now".
   */
  async waitForTokens(): Promise<void> {
    const w = this.waiting;
    if (!w || w.active) return;
    w.active = true;
    this.publish();
    const cancel = new AbortController();
    this.cancelWaiting = () => cancel.abort();
    try {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'LLM-Tor: waiting for tokens', cancellable: true }, async (progress, token) => {
        token.onCancellationRequested(() => cancel.abort());
        for (;;) {
          if (cancel.signal.aborted) throw new Error('cancelled');
          const c = await this.wallet.counts();
          if (c.ready >= w.needed) break;
          if (c.total < w.needed) {
            await this.startSchedule();
            const at = this.scheduler?.nextRefillAt;
            progress.report({ message: `${c.total} of ${w.needed} tokens held; waiting for the scheduled refill${at ? ` (next check ${new Date(at).toLocaleTimeString()})` : ''}` });
            await sleep(5_000, cancel.signal);
            continue;
          }
          const next = c.nextReadyAt ?? Date.now() + 1000;
          progress.report({ message: `${c.ready} of ${w.needed} ready; next in ${Math.max(1, Math.ceil((next - Date.now()) / 1000))} s` });
          await sleep(Math.min(5_000, Math.max(200, next - Date.now() + 50)), cancel.signal);
        }
      });
      this.waiting = undefined;
      await this.run();
    } catch (e) {
      this.waiting = undefined;
      if (!cancel.signal.aborted) this.fail(e);
      this.publish();
    } finally {
      this.cancelWaiting = undefined;
    }
  }

  cancelWaiting: (() => void) | undefined;

  cancelWait(): void {
    this.cancelWaiting?.();
    this.waiting = undefined;
    const last = this.history.current().messages.at(-1);
    if (last?.role === 'user') this.history.update(last.id, { error: NOT_SENT });
    this.publish();
  }

  dismissKey(): void {
    this.accountKeyOnce = undefined;
    this.publish();
  }

  dismissError(): void {
    this.error = undefined;
    this.publish();
  }

  /** Puts code into the chat input (selection / file as context). */
  addContext(text: string): void {
    this.post({ type: 'context', text });
  }

  /** Moves the keyboard focus to the chat input. */
  focusInput(): void {
    this.post({ type: 'focus' });
  }

  async insertAtCursor(text: string): Promise<void> {
    const editor = vscode.window.activeTextEditor ?? this.lastEditor;
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

  async clearHistory(): Promise<void> {
    await this.history.clear();
    this.publish();
  }

  /** What each webview message does (uiState.ts checks the table is total). */
  private readonly handlers: FromWebviewHandlers = {
    ready: () => this.publish(),
    send: (m) => this.send(m.text),
    stop: () => this.stop(),
    regenerate: () => this.regenerate(),
    edit: (m) => this.edit(m.id, m.text),
    delete: (m) => this.delete(m.id),
    newChat: () => this.newChat(),
    selectChat: (m) => this.selectChat(m.id),
    selectModel: (m) => this.selectModel(m.id),
    createAccount: () => this.createAccount(),
    signIn: () => vscode.commands.executeCommand('llmtor.signIn'),
    account: () => this.accountMenu(),
    wait: () => this.waitForTokens(),
    cancelWait: () => this.cancelWait(),
    dismissKey: () => this.dismissKey(),
    dismissError: () => this.dismissError(),
    command: (m) => vscode.commands.executeCommand(m.command),
    copy: (m) => vscode.env.clipboard.writeText(m.text),
    insert: (m) => this.insertAtCursor(m.text),
    applyDiff: (m) => this.applyAsDiff(m.text),
    openLink: (m) => this.openLink(m.text),
  };

  async handle(m: FromWebview): Promise<void> {
    await Promise.resolve(dispatch(this.handlers, m));
  }

  /** Account, purchase and wallet: one QuickPick (view title, status bar), out of the chat's way. */
  async accountMenu(): Promise<void> {
    type Item = vscode.QuickPickItem & { run?: () => unknown };
    const w = this.counts;
    const items: Item[] = this.signedIn
      ? [
          { label: '$(credit-card) Buy credits…', description: this.balance !== undefined ? `balance ${this.balance} credits` : '', run: () => this.buy() },
          { label: '$(key) Get tokens now', description: `wallet ${w.total} tokens, ${w.ready} ready`, run: () => this.getTokens() },
          { label: '$(refresh) Refresh balance', run: () => this.withBusy('Refreshing…', () => this.refresh()) },
          { label: '', kind: vscode.QuickPickItemKind.Separator },
          { label: '$(shield) Revoke transient abuse token…', run: () => this.revokeTransient() },
          { label: '$(sign-out) Sign out…', description: 'forgets the key and unused tokens on this machine', run: () => this.signOut() },
        ]
      : [
          { label: '$(add) Create account', description: 'a random key: no e-mail, no name', run: () => this.createAccount() },
          { label: '$(sign-in) Sign in with an account key…', run: () => vscode.commands.executeCommand('llmtor.signIn') },
        ];
    const pick = await vscode.window.showQuickPick(items, { title: `LLM-Tor account — ${this.signedIn ? 'signed in' : 'not signed in'}` });
    await pick?.run?.();
  }

  /**
   * "Apply as diff": the active editor's text with the code in place of its selection (or
   * instead of the whole text without a selection), shown with vscode.diff; "Accept" in the
   * diff's title bar writes it (llmtor.acceptDiff).
   */
  async applyAsDiff(code: string): Promise<void> {
    const editor = vscode.window.activeTextEditor ?? this.lastEditor;
    if (!editor) {
      void vscode.window.showWarningMessage('Open the file to change first; the diff compares it with the answer\'s code.');
      return;
    }
    const doc = editor.document;
    const sel = editor.selection;
    const proposed = sel.isEmpty ? code : doc.getText(new vscode.Range(doc.positionAt(0), sel.start)) + code + doc.getText(new vscode.Range(sel.end, doc.positionAt(doc.getText().length)));
    const uri = proposals.put(doc.uri, proposed);
    await vscode.commands.executeCommand('vscode.diff', doc.uri, uri, `${doc.uri.path.split('/').pop() ?? 'file'} ↔ LLM-Tor suggestion`);
  }

  dispose(): void {
    this.scheduler?.stop();
    this.abort?.abort();
    for (const d of this.disposables) d.dispose();
    this.stateEmitter.dispose();
  }
}

const NOT_SENT = 'Not sent (edit it to send it; it is not added to your next message).';
const NOT_ANSWERED = 'No answer (edit or regenerate to send it again; it is not added to your next message).';

/** Plain words with a next step; a possible tagging attempt keeps its exact reason. */
function explain(e: unknown): FriendlyError {
  if (e instanceof KeyConsistencyError) return { text: e.message, action: { label: 'Reset key pins…', command: 'llmtor.resetKeyPins' } };
  if (e instanceof ChallengeRefusedError) return { text: e.message, action: { label: 'Open settings', command: 'llmtor.openSettings' } };
  return friendlyError(e);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

function span(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} min` : `${Math.round(ms / 1000)} s`;
}

export function errorText(e: unknown): string {
  return explain(e).text;
}

/**
 * Proposed file contents for "Apply as diff", served read-only under the llmtor-proposal:
 * scheme (in memory, never written anywhere until the user accepts).
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
  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString())?.text ?? '';
  }
}
export const proposals = new ProposalStore();

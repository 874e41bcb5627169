/**
 * The extension's state, shared by every chat view (sidebar view, editor panel) and the status
 * bar: account, wallet, Tor, models, the current chat. The actions live beside it, by concern:
 * chatSession.ts (send, stream, wait for tokens), accountActions.ts (account, purchase, wallet),
 * editorActions.ts (insert, links, diffs), fileAttachments.ts (`#file` context), webviewHandlers.ts (what each webview message does).
 *
 * Privacy notes for this layer:
 * - Nothing identifying is logged (no output channel with request data at all).
 * - Identity calls happen only on an explicit user action or on the refill schedule
 *   (core/refillScheduler.ts), which starts on the first explicit use, never at activation,
 *   and never reacts to a send (docs/privacy.md "Issuance timing").
 */
import * as vscode from 'vscode';
import { ChatHistory, MemoryKeyValueStore } from '../core/history.js';
import { HistoryCipher } from '../core/historyCipher.js';
import { ChallengeRefusedError, LlmTorClient } from '../core/llmtorClient.js';
import { RefillScheduler } from '../core/refillScheduler.js';
import { DEFAULT_REFILL_POLICY, type RefillPolicy } from '../core/refillPlan.js';
import type { ModelInfo } from '../core/redemptionApi.js';
import { KeyConsistencyError } from '../core/keyConsistency.js';
import { clearnetTransport, torTransport, type TorTransport } from '../core/transport.js';
import { Wallet, type WalletCounts } from '../core/wallet.js';
import type { FriendlyError } from '../core/friendlyErrors.js';
import { dispatch, type FromWebview, type ToWebview, type UiState } from '../core/uiState.js';
import { AccountActions } from './accountActions.js';
import { ChatSession } from './chatSession.js';
import { EditorActions } from './editorActions.js';
import { FileAttachments } from './fileAttachments.js';
import { explain } from './explain.js';
import { describe as describeTor, type TorManager } from './torManager.js';
import { webviewHandlers } from './webviewHandlers.js';

export type { FromWebview, ToWebview, UiState };

/** The model the user picked, kept per machine (a settings write could ask for a reload). */
export const MODEL_CHOICE_KEY = 'llmtor.modelChoice';

export class Controller implements vscode.Disposable {
  // Not private: the action modules beside this file (one controller, split by concern) read and set them.
  client!: LlmTorClient;
  wallet!: Wallet;
  history: ChatHistory;
  balance: number | undefined;
  signedIn = false;
  counts: WalletCounts = { total: 0, ready: 0, nextReadyAt: undefined };
  models: ModelInfo[] = [];
  model: string | undefined;
  busy: string | undefined;
  accountKeyOnce: string | undefined;
  error: FriendlyError | undefined;
  refillText: string | undefined;
  scheduler: RefillScheduler | undefined;
  /** The Tor transport of the current client (its circuit pools are closed with it). */
  private transport: TorTransport | undefined;
  private readonly views = new Set<(m: ToWebview) => void>();
  private readonly stateEmitter = new vscode.EventEmitter<void>();
  readonly onDidChangeState = this.stateEmitter.event;
  private readonly disposables: vscode.Disposable[] = [];
  readonly chat = new ChatSession(this);
  readonly account = new AccountActions(this);
  readonly editors = new EditorActions();
  readonly files = new FileAttachments(this);
  private readonly handlers = webviewHandlers(this);

  constructor(
    readonly ctx: vscode.ExtensionContext,
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
      this.editors,
    );
  }

  private buildClient(): void {
    const cfg = vscode.workspace.getConfiguration('llmtor');
    const issuerUrl = cfg.get<string>('issuerUrl', 'http://127.0.0.1:8080');
    const redemptionUrl = cfg.get<string>('redemptionUrl') || issuerUrl;
    // A new client gets a new transport: close the old one's pre-built circuits now rather
    // than leave them open until their pools go idle.
    this.transport?.close?.();
    const tor = torTransport(() => this.tor.socks());
    this.transport = tor;
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

  policy(): RefillPolicy {
    const cfg = vscode.workspace.getConfiguration('llmtor.wallet');
    return {
      ...DEFAULT_REFILL_POLICY,
      batchSize: cfg.get<number>('batchSize', DEFAULT_REFILL_POLICY.batchSize),
      lowWater: cfg.get<number>('lowWater', DEFAULT_REFILL_POLICY.lowWater),
      directoryGapMs: cfg.get<number>('directoryGapSeconds', DEFAULT_REFILL_POLICY.directoryGapMs / 1000) * 1000,
    };
  }

  /** The refill schedule starts on the first explicit use (refillScheduler.ts). */
  async startSchedule(): Promise<void> {
    if (this.signedIn) await this.scheduler?.start();
  }

  attach(post: (m: ToWebview) => void): vscode.Disposable {
    this.views.add(post);
    post({ type: 'state', state: this.state() });
    return new vscode.Disposable(() => this.views.delete(post));
  }

  post(m: ToWebview): void {
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
      streamingId: this.chat.streamingId,
      busy: this.busy,
      refill: this.refillText,
      accountKeyOnce: this.accountKeyOnce,
      waiting: this.chat.waiting,
      error: this.error,
      historyEnabled: vscode.workspace.getConfiguration('llmtor').get<boolean>('history.enabled', true),
      attachments: this.files.pending,
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

  currentModel(): string | undefined {
    if (this.model && (this.models.length === 0 || this.models.some((m) => m.id === this.model))) return this.model;
    return this.models[0]?.id;
  }

  async updateCounts(): Promise<void> {
    this.counts = await this.wallet.counts();
    this.publish();
  }

  fail(e: unknown): void {
    this.error = explain(e);
    this.publish();
    // A possible tagging attempt must be seen even with the view closed.
    if (e instanceof KeyConsistencyError || e instanceof ChallengeRefusedError) void vscode.window.showWarningMessage(`LLM-Tor stopped getting tokens: ${e.message}`);
  }

  async withBusy<T>(label: string, fn: () => Promise<T>): Promise<T | undefined> {
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

  async clearHistory(): Promise<void> {
    await this.history.clear();
    this.publish();
  }

  async handle(m: FromWebview): Promise<void> {
    await Promise.resolve(dispatch(this.handlers, m));
  }
  dispose(): void {
    this.scheduler?.stop();
    this.transport?.close?.();
    this.chat.stop();
    for (const d of this.disposables) d.dispose();
    this.stateEmitter.dispose();
  }
}

export { errorText } from './explain.js';

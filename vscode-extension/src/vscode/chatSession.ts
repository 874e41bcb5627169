/**
 * The chat flow of the current conversation: send, regenerate, edit, stop, and the wait for
 * aged tokens. Requests go only through the client's Tor redemption path.
 */
import * as vscode from 'vscode';
import { withContext } from '../core/fileContext.js';
import { ChallengeRefusedError, NoReadyTokensError } from '../core/llmtorClient.js';
import { KeyConsistencyError } from '../core/keyConsistency.js';
import type { UiState } from '../core/uiState.js';
import { MODEL_CHOICE_KEY, type Controller } from './controller.js';
import { explain } from './explain.js';

const NOT_SENT = 'Not sent (edit it to send it; it is not added to your next message).';
const NOT_ANSWERED = 'No answer (edit or regenerate to send it again; it is not added to your next message).';

export class ChatSession {
  streamingId: string | undefined;
  waiting: UiState['waiting'];
  private abort: AbortController | undefined;
  cancelWaiting: (() => void) | undefined;

  constructor(private readonly c: Controller) {}

  selectModel(id: string): void {
    this.c.model = id;
    void this.c.ctx.globalState.update(MODEL_CHOICE_KEY, id);
    this.c.publish();
  }

  async send(text: string): Promise<void> {
    if (!text.trim() || this.streamingId) return;
    // Attached files go with this message only, inside its text (fileContext.ts).
    const files = this.c.files.take();
    this.c.history.add({ role: 'user', content: text, ...(files.length ? { files } : {}) });
    void this.c.startSchedule();
    await this.run();
  }

  async regenerate(): Promise<void> {
    if (this.streamingId) return;
    const left = this.c.history.truncateForRegenerate();
    if (!left) return;
    const lastUser = left.filter((m) => m.role === 'user').at(-1);
    if (lastUser?.error) this.c.history.update(lastUser.id, { error: undefined });
    await this.run();
  }

  async edit(id: string, text: string): Promise<void> {
    if (this.streamingId) return;
    if (!this.c.history.edit(id, text)) return;
    await this.run();
  }

  delete(id: string): void {
    if (this.streamingId === id) this.abort?.abort();
    this.c.history.delete(id);
    this.c.publish();
  }

  stop(): void {
    this.abort?.abort();
  }

  newChat(): void {
    this.abort?.abort();
    this.c.history.newConversation();
    this.c.publish();
  }

  selectChat(id: string): void {
    if (this.streamingId) return;
    this.c.history.select(id);
    this.c.publish();
  }

  /**
   * Answers the last user message. A prompt that got no answer (an error, a stop before the
   * first word, a cancelled wait) is marked unanswered: it stays visible, with the reason, but
   * is never sent again as part of a later request (edit or regenerate sends it again).
   */
  private async run(): Promise<void> {
    this.c.error = undefined;
    this.waiting = undefined;
    const prompt = this.c.history.current().messages.filter((m) => m.role === 'user').at(-1);
    const unanswered = (why: string) => {
      if (prompt) this.c.history.update(prompt.id, { error: why });
    };
    if (!this.c.signedIn) {
      unanswered(NOT_SENT);
      this.c.fail(new Error('Create an account or sign in first (the Account button above the chat).'));
      return;
    }
    const model = this.c.currentModel();
    const messages = this.c.history
      .current()
      .messages.filter((m) => !m.error)
      .map((m) => ({ role: m.role, content: withContext(m.content, m.files) }));
    const answer = this.c.history.add({ role: 'assistant', content: '', ...(model ? { model } : {}) });
    this.streamingId = answer.id;
    const abort = new AbortController();
    this.abort = abort;
    this.c.publish();
    let content = '';
    try {
      await this.c.tor.ensureStarted();
      if (this.c.models.length === 0) this.c.models = await this.c.client.models(true);
      const useModel = model ?? this.c.currentModel();
      if (!useModel) throw new Error('the server offers no models');
      const r = await this.c.client.send(useModel, messages, {
        signal: abort.signal,
        onDelta: (d) => {
          content += d;
          this.c.post({ type: 'delta', id: answer.id, text: d });
        },
        onRetry: (e, attempt, of) => {
          // Said as soon as the proxy reports it, not after the retries.
          this.c.busy = `${explain(e).text.replace(/\.$/, '')} — retrying (${attempt} of ${of}) with the same tokens, no second charge…`;
          this.c.publish();
        },
      });
      this.c.history.update(answer.id, { content: r.content, credits: r.credits, model: useModel });
    } catch (e) {
      if (e instanceof NoReadyTokensError) {
        // The prompt waits for "Wait and send"; cancelWait() marks it unanswered.
        this.c.history.delete(answer.id);
        this.waiting = { needed: e.needed, ready: e.counts.ready, total: e.counts.total, nextReadyAt: e.counts.nextReadyAt, active: false };
      } else if (abort.signal.aborted) {
        if (content) this.c.history.update(answer.id, { content });
        else {
          this.c.history.delete(answer.id);
          unanswered('Stopped before an answer arrived (not sent again with your next message).');
        }
      } else {
        this.c.history.update(answer.id, { content, error: explain(e).text });
        if (!content) unanswered(NOT_ANSWERED);
        // A refused challenge may be a tagging attempt: a warning too, not only a line in the chat.
        if (e instanceof ChallengeRefusedError || e instanceof KeyConsistencyError) void vscode.window.showWarningMessage(`LLM-Tor: ${e.message}`);
      }
    } finally {
      this.streamingId = undefined;
      this.abort = undefined;
      this.c.busy = undefined;
      await this.c.updateCounts();
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
    this.c.publish();
    const cancel = new AbortController();
    this.cancelWaiting = () => cancel.abort();
    try {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'LLM-Tor: waiting for tokens', cancellable: true }, async (progress, token) => {
        token.onCancellationRequested(() => cancel.abort());
        for (;;) {
          if (cancel.signal.aborted) throw new Error('cancelled');
          const c = await this.c.wallet.counts();
          if (c.ready >= w.needed) break;
          if (c.total < w.needed) {
            await this.c.startSchedule();
            const at = this.c.scheduler?.nextRefillAt;
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
      if (!cancel.signal.aborted) this.c.fail(e);
      this.c.publish();
    } finally {
      this.cancelWaiting = undefined;
    }
  }

  cancelWait(): void {
    this.cancelWaiting?.();
    this.waiting = undefined;
    const last = this.c.history.current().messages.at(-1);
    if (last?.role === 'user') this.c.history.update(last.id, { error: NOT_SENT });
    this.c.publish();
  }
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

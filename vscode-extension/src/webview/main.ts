/**
 * The chat webview (browser side). Renders the state the extension sends; every action is
 * a message back. Text from the model is rendered only through renderMarkdown (escape-first,
 * fixed tag set); everything else is set with textContent. No network access (CSP).
 */
import { renderMarkdown } from '../core/markdown';
import type { UiState } from '../core/uiState';

type Msg = UiState['messages'][number];

declare function acquireVsCodeApi(): { postMessage(m: unknown): void; getState(): unknown; setState(s: unknown): void };
const vscode = acquireVsCodeApi();
const post = (m: Record<string, unknown>) => vscode.postMessage(m);

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function button(id: string, label: string, onClick: () => void, title = ''): HTMLButtonElement {
  const b = el('button', { id, type: 'button', ...(title ? { title } : {}) }, label);
  b.addEventListener('click', onClick);
  return b;
}

const app = document.getElementById('app')!;
const statusBar = el('div', { id: 'status', class: 'status' });
const errorBox = el('div', { id: 'error', class: 'banner error', hidden: '' });
const accountBox = el('section', { id: 'account', class: 'account' });
const toolbar = el('div', { class: 'toolbar' });
const modelSelect = el('select', { id: 'model', title: 'Model (price per request)' });
const chatSelect = el('select', { id: 'chats', title: 'Chats on this machine' });
const waitingBox = el('div', { id: 'waiting', class: 'banner', hidden: '' });
const messagesBox = el('div', { id: 'messages', class: 'messages' });
const prompt = el('textarea', { id: 'prompt', rows: '3', placeholder: 'Ask anything — sent over Tor, paid with anonymous tokens (Enter to send, Shift+Enter for a new line)' });
const sendBtn = button('send', 'Send', () => send());
const stopBtn = button('stop', 'Stop', () => post({ type: 'stop' }));
const regenBtn = button('regenerate', 'Regenerate', () => post({ type: 'regenerate' }));
const inputRow = el('div', { class: 'input' }, prompt, el('div', { class: 'input-actions' }, sendBtn, stopBtn, regenBtn));

// Links in answers: never followed inside the webview; the host warns that they open outside Tor.
messagesBox.addEventListener('click', (e) => {
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a) return;
  e.preventDefault();
  e.stopPropagation();
  const href = a.getAttribute('href');
  if (href) post({ type: 'openLink', text: href });
});

modelSelect.addEventListener('change', () => post({ type: 'selectModel', id: modelSelect.value }));
chatSelect.addEventListener('change', () => post({ type: 'selectChat', id: chatSelect.value }));
toolbar.append(modelSelect, chatSelect, button('new-chat', 'New chat', () => post({ type: 'newChat' })));
app.append(statusBar, errorBox, accountBox, toolbar, waitingBox, messagesBox, inputRow);

prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});

function send(): void {
  const text = prompt.value;
  if (!text.trim() || state?.streamingId) return;
  post({ type: 'send', text });
  prompt.value = '';
}

let state: UiState | undefined;
/** Text of the message being streamed (deltas arrive between state updates). */
const streaming = new Map<string, string>();
let renderQueued = false;

function renderStatus(s: UiState): void {
  statusBar.replaceChildren(
    el('span', { id: 'tor-state', class: `tor ${s.tor.kind}` }, `Tor: ${s.tor.text}`),
    el('span', { id: 'balance' }, s.balance !== undefined ? `Balance: ${s.balance} credits` : s.signedIn ? 'Balance: …' : 'Not signed in'),
    el('span', { id: 'wallet' }, `Wallet: ${s.wallet.total} tokens (${s.wallet.ready} ready)`),
    ...(s.busy ? [el('span', { id: 'busy', class: 'busy' }, s.busy)] : []),
  );
  errorBox.hidden = !s.error;
  errorBox.replaceChildren(...(s.error ? [el('span', {}, s.error), button('dismiss-error', '×', () => post({ type: 'dismissError' }), 'Dismiss')] : []));
}

function renderAccount(s: UiState): void {
  const parts: Node[] = [];
  if (s.accountKeyOnce) {
    parts.push(
      el(
        'div',
        { class: 'banner key' },
        el('strong', {}, 'Your account key — shown once. Write it down: it is the only way back into your account and your credits.'),
        el('code', { id: 'account-key' }, s.accountKeyOnce),
        el('div', {}, button('copy-key', 'Copy', () => post({ type: 'copy', text: s.accountKeyOnce ?? '' })), button('dismiss-key', 'I saved it', () => post({ type: 'dismissKey' }))),
      ),
    );
  }
  if (!s.signedIn) {
    const key = el('input', { id: 'signin-key', type: 'password', placeholder: 'Account key', autocomplete: 'off' });
    parts.push(
      el('p', {}, 'An account is a random key — no e-mail, no name. You pay under it; your chats are paid with blind tokens that cannot be linked to it.'),
      el('div', { class: 'row' }, button('create-account', 'Create account', () => post({ type: 'createAccount' }))),
      el('div', { class: 'row' }, key, button('sign-in', 'Sign in', () => post({ type: 'signIn', key: key.value }))),
    );
  } else {
    const pack = el('select', { id: 'pack' }, ...s.packs.map((p) => el('option', { value: p.id }, p.label)));
    parts.push(
      el(
        'div',
        { class: 'row' },
        pack,
        button('buy', 'Buy credits', () => post({ type: 'buy', pack: pack.value })),
        button('refresh', 'Refresh', () => post({ type: 'refresh' })),
        button('get-tokens', 'Get tokens', () => post({ type: 'getTokens' }), 'Turn credits into anonymous tokens now'),
        button('sign-out', 'Sign out', () => post({ type: 'signOut' })),
      ),
    );
  }
  accountBox.replaceChildren(...parts);
}

function renderSelectors(s: UiState): void {
  modelSelect.replaceChildren(...s.models.map((m) => el('option', { value: m.id, ...(m.id === s.model ? { selected: '' } : {}) }, `${m.id} — ${m.priceCredits} credit${m.priceCredits === 1 ? '' : 's'}`)));
  if (s.models.length === 0) modelSelect.append(el('option', {}, 'models load once Tor is up'));
  chatSelect.replaceChildren(...s.conversations.map((c) => el('option', { value: c.id, ...(c.id === s.currentId ? { selected: '' } : {}) }, c.title)));
}

function renderWaiting(s: UiState): void {
  const w = s.waiting;
  waitingBox.hidden = !w;
  if (!w) return;
  const when = w.nextReadyAt ? ` The next token is ready in about ${Math.max(1, Math.round((w.nextReadyAt - Date.now()) / 1000))} s.` : '';
  const what =
    w.total < w.needed
      ? `The wallet holds ${w.total} token(s); this request needs ${w.needed}. Tokens are fetched at random times, never right before a chat (so the server cannot match your chat to their issuance): Wait and send waits for the next scheduled refill and for the tokens to age; Get tokens fetches now.`
      : `${w.ready} of ${w.needed} needed tokens are old enough to use; the rest are still ageing so this chat cannot be matched to their issuance.${when}`;
  waitingBox.replaceChildren(
    el('span', {}, what),
    w.active ? el('span', { class: 'busy' }, ' Waiting…') : button('wait', 'Wait and send', () => post({ type: 'wait' })),
    button('cancel-wait', 'Cancel', () => post({ type: 'cancelWait' })),
  );
}

function renderMessage(m: Msg, s: UiState): HTMLElement {
  const isStreaming = m.id === s.streamingId;
  const text = isStreaming ? (streaming.get(m.id) ?? m.content) : m.content;
  const content = el('div', { class: 'content' });
  if (m.role === 'assistant') {
    const r = renderMarkdown(text);
    // Safe: renderMarkdown escapes all input and emits only a fixed set of tags (see markdown.ts).
    content.innerHTML = r.html;
    content.querySelectorAll<HTMLButtonElement>('button[data-code-index]').forEach((b) => {
      const code = r.codeBlocks[Number(b.dataset['codeIndex'])]?.code ?? '';
      b.addEventListener('click', () => post({ type: b.classList.contains('insert-code') ? 'insert' : 'copy', text: code }));
    });
    if (isStreaming && !text) content.append(el('span', { class: 'busy' }, 'Waiting for the answer over Tor…'));
  } else {
    content.textContent = text;
  }
  const actions = el('div', { class: 'msg-actions' });
  if (m.role === 'user' && !s.streamingId) {
    actions.append(
      button(`edit-${m.id}`, 'Edit', () => {
        const ta = el('textarea', { class: 'edit-box', rows: '3' });
        ta.value = m.content;
        content.replaceChildren(ta, el('div', {}, button(`save-${m.id}`, 'Send edited', () => post({ type: 'edit', id: m.id, text: ta.value })), button(`cancel-${m.id}`, 'Cancel', () => render())));
      }),
    );
  }
  if (!isStreaming) actions.append(button(`delete-${m.id}`, 'Delete', () => post({ type: 'delete', id: m.id })));
  const meta = m.role === 'assistant' && (m.model || m.credits) ? el('div', { class: 'meta' }, [m.model, m.credits ? `${m.credits} credit${m.credits === 1 ? '' : 's'}` : ''].filter(Boolean).join(' · ')) : '';
  const err = m.error ? el('div', { class: 'msg-error' }, m.error) : '';
  return el('div', { class: `msg ${m.role}${isStreaming ? ' streaming' : ''}`, 'data-id': m.id }, content, err, meta, actions);
}

function renderMessages(s: UiState): void {
  const atBottom = messagesBox.scrollHeight - messagesBox.scrollTop - messagesBox.clientHeight < 40;
  messagesBox.replaceChildren(...s.messages.map((m) => renderMessage(m, s)));
  if (s.messages.length === 0) messagesBox.append(el('p', { class: 'empty' }, s.historyEnabled ? 'New chat. History stays on this machine only.' : 'New chat. History is off: nothing is kept.'));
  if (atBottom) messagesBox.scrollTop = messagesBox.scrollHeight;
}

function render(): void {
  const s = state;
  if (!s) return;
  renderStatus(s);
  renderAccount(s);
  renderSelectors(s);
  renderWaiting(s);
  renderMessages(s);
  const busy = !!s.streamingId;
  sendBtn.disabled = busy;
  stopBtn.hidden = !busy;
  regenBtn.hidden = busy || s.messages.length === 0;
}

function renderStreamingSoon(): void {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const s = state;
    if (!s?.streamingId) return;
    const node = messagesBox.querySelector<HTMLElement>(`.msg[data-id="${CSS.escape(s.streamingId)}"]`);
    const m = s.messages.find((x) => x.id === s.streamingId);
    if (!node || !m) return;
    const atBottom = messagesBox.scrollHeight - messagesBox.scrollTop - messagesBox.clientHeight < 40;
    node.replaceWith(renderMessage(m, s));
    if (atBottom) messagesBox.scrollTop = messagesBox.scrollHeight;
  });
}

window.addEventListener('message', (ev: MessageEvent) => {
  const m = ev.data as { type: string; state?: UiState; id?: string; text?: string };
  if (m.type === 'state' && m.state) {
    state = m.state;
    for (const id of [...streaming.keys()]) if (id !== m.state.streamingId) streaming.delete(id);
    render();
  } else if (m.type === 'delta' && m.id && typeof m.text === 'string') {
    streaming.set(m.id, (streaming.get(m.id) ?? '') + m.text);
    renderStreamingSoon();
  } else if (m.type === 'context' && typeof m.text === 'string') {
    prompt.value = (prompt.value ? `${prompt.value}\n` : '') + m.text;
    prompt.focus();
  }
});

post({ type: 'ready' });

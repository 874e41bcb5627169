/**
 * The chat webview (browser side). The conversation owns the panel: a one-line status
 * header, the messages, the composer. Account, purchase and wallet live in the Account
 * QuickPick (view title, status bar).
 *
 * State updates never destroy what the user is doing: the composer, selects and header
 * buttons are created once and only their values change; each region is re-rendered only
 * when its slice of the state changed; messages are keyed by id and a message being edited
 * is never re-rendered. Text from the model is rendered only through renderMarkdown
 * (escape-first, fixed tag set); everything else is set with textContent. No network (CSP).
 */
import { formatBytes, hashQueryAt, utf8Bytes, withContext, type FileContext } from '../core/fileContext';
import { renderMarkdown } from '../core/markdown';
import { creditsForBytes, dispatch, type ChatMessage, type FromWebview, type ToWebview, type ToWebviewHandlers, type UiState } from '../core/uiState';

declare function acquireVsCodeApi(): { postMessage(m: FromWebview): void; getState(): unknown; setState(s: unknown): void };
const vscode = acquireVsCodeApi();
const post = (m: FromWebview) => vscode.postMessage(m);

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function button(id: string, label: string, onClick: () => void, opts: { title?: string; secondary?: boolean; icon?: boolean } = {}): HTMLButtonElement {
  const cls = [opts.secondary ? 'secondary' : '', opts.icon ? 'icon' : ''].filter(Boolean).join(' ');
  const b = el('button', { id, type: 'button', ...(opts.title ? { title: opts.title, 'aria-label': opts.title } : {}), ...(cls ? { class: cls } : {}) }, label);
  b.addEventListener('click', onClick);
  return b;
}

/** Calls `fn` only when `value` differs (by JSON) from the last call for `key`. */
const lastSig = new Map<string, string>();
function changed(key: string, value: unknown): boolean {
  const sig = JSON.stringify(value) ?? '';
  if (lastSig.get(key) === sig) return false;
  lastSig.set(key, sig);
  return true;
}

// ---- the fixed skeleton (created once) ----

const app = document.getElementById('app')!;
const torState = el('span', { id: 'tor-state', class: 'tor' });
const balance = el('span', { id: 'balance' });
const wallet = el('span', { id: 'wallet' });
const activity = el('span', { id: 'busy', class: 'busy' });
const chatSelect = el('select', { id: 'chats', title: 'Chats on this machine', 'aria-label': 'Chats on this machine' });
const header = el(
  'header',
  { id: 'status', class: 'status' },
  el('div', { class: 'status-text' }, torState, balance, wallet, activity),
  el('div', { class: 'status-actions' }, chatSelect, button('new-chat', '+', () => post({ type: 'newChat' }), { title: 'New chat', secondary: true, icon: true }), button('account-btn', 'Account', () => post({ type: 'account' }), { title: 'Account, credits and tokens', secondary: true })),
);
const errorBox = el('div', { id: 'error', class: 'banner error', role: 'alert', hidden: '' });
const keyBox = el('div', { id: 'key-banner', class: 'banner key', hidden: '' });
const welcome = el(
  'section',
  { id: 'welcome', class: 'welcome', hidden: '' },
  el('p', {}, 'Chat with LLMs without being identified. You pay under a random account key (no e-mail, no name); chats are paid with blind tokens that cannot be linked to it, and sent over Tor.'),
  el('div', { class: 'row' }, button('create-account', 'Create account', () => post({ type: 'createAccount' })), button('sign-in', 'Sign in with a key…', () => post({ type: 'signIn' }), { secondary: true })),
);
const waitingBox = el('div', { id: 'waiting', class: 'banner', hidden: '' });
const messagesBox = el('div', { id: 'messages', class: 'messages', role: 'log' });
const empty = el('p', { class: 'empty' });
const prompt = el('textarea', { id: 'prompt', rows: '3', 'aria-label': 'Message', placeholder: 'Ask anything — over Tor, paid with anonymous tokens (Enter to send, Shift+Enter for a new line)' });
const modelSelect = el('select', { id: 'model', title: 'Model', 'aria-label': 'Model' });
const cost = el('span', { id: 'cost', class: 'cost' });
const sendBtn = button('send', 'Send', () => send(), { title: 'Send (Enter)' });
const stopBtn = button('stop', 'Stop', () => post({ type: 'stop' }), { title: 'Stop the answer' });
const regenBtn = button('regenerate', 'Regenerate', () => post({ type: 'regenerate' }), { secondary: true, title: 'Ask again for the last answer' });
const addFileBtn = button('add-file', '+ File', () => post({ type: 'pickFiles' }), { secondary: true, title: 'Attach workspace files to this message (or type #)' });
/** Files attached to the message being written, as removable chips. */
const chips = el('div', { id: 'attachments', class: 'chips', hidden: '' });
/** The `#` completion: workspace files matching what follows the `#`. */
const suggest = el('ul', { id: 'file-suggest', class: 'suggest', role: 'listbox', 'aria-label': 'Workspace files', hidden: '' });
const composer = el('div', { class: 'composer' }, chips, suggest, prompt, el('div', { class: 'composer-row' }, modelSelect, cost, addFileBtn, el('span', { class: 'spacer' }), regenBtn, stopBtn, sendBtn));
app.append(header, errorBox, keyBox, welcome, waitingBox, messagesBox, composer);

// Links in answers: never followed inside the webview; the host warns that they open outside Tor.
messagesBox.addEventListener('click', (e) => {
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a) return;
  e.preventDefault();
  e.stopPropagation();
  const href = a.getAttribute('href');
  if (href) post({ type: 'openLink', text: href });
});
modelSelect.addEventListener('change', () => {
  post({ type: 'selectModel', id: modelSelect.value });
  renderCost();
});
chatSelect.addEventListener('change', () => post({ type: 'selectChat', id: chatSelect.value }));
prompt.addEventListener('keydown', (e) => {
  if (!suggest.hidden && suggestion.paths.length > 0 && !e.isComposing) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      suggestion.index = (suggestion.index + (e.key === 'ArrowDown' ? 1 : -1) + suggestion.paths.length) % suggestion.paths.length;
      renderSuggest();
      return;
    }
    if ((e.key === 'Enter' && !e.shiftKey) || e.key === 'Tab') {
      e.preventDefault();
      chooseFile(suggestion.paths[suggestion.index]!);
      return;
    }
    if (e.key === 'Escape') {
      e.preventDefault();
      closeSuggest();
      return;
    }
  }
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  } else if (e.key === 'Escape' && state?.streamingId) post({ type: 'stop' });
});
prompt.addEventListener('input', () => {
  renderCost();
  askFiles();
});
// Leaving the input closes the list (later, so a click on an item lands first) unless the input has the focus again by then.
prompt.addEventListener('blur', () =>
  setTimeout(() => {
    if (document.activeElement !== prompt) closeSuggest();
  }, 150),
);

// ---- `#file` completion (the host lists and reads files; only picked ones are attached) ----

const suggestion: { query: string | undefined; paths: string[]; index: number } = { query: undefined, paths: [], index: 0 };

function askFiles(): void {
  const q = hashQueryAt(prompt.value, prompt.selectionStart ?? prompt.value.length);
  if (!q) return closeSuggest();
  suggestion.query = q.query;
  post({ type: 'fileQuery', query: q.query });
}

function closeSuggest(): void {
  suggestion.query = undefined;
  suggestion.paths = [];
  suggest.hidden = true;
  suggest.replaceChildren();
}

function renderSuggest(): void {
  suggest.hidden = suggestion.paths.length === 0;
  suggest.replaceChildren(
    ...suggestion.paths.map((p, i) => {
      const li = el('li', { role: 'option', class: 'suggest-item', 'data-path': p, 'aria-selected': String(i === suggestion.index) }, p);
      // mousedown, not click: the textarea's blur would close the list first.
      li.addEventListener('mousedown', (e) => {
        e.preventDefault();
        chooseFile(p);
      });
      return li;
    }),
  );
}

/** Removes the typed `#query` from the prompt and asks the host to attach the file. */
function chooseFile(path: string): void {
  const caret = prompt.selectionStart ?? prompt.value.length;
  const q = hashQueryAt(prompt.value, caret);
  if (q) {
    prompt.value = prompt.value.slice(0, q.start) + prompt.value.slice(caret);
    prompt.setSelectionRange(q.start, q.start);
  }
  closeSuggest();
  post({ type: 'attachFile', path });
}

function renderChips(files: FileContext[]): void {
  if (!changed('attachments', files.map((f) => f.path))) return;
  chips.hidden = files.length === 0;
  chips.replaceChildren(
    ...files.map((f) =>
      el(
        'span',
        { class: 'chip', 'data-path': f.path, title: `${f.path} — sent with this message only` },
        el('span', { class: 'chip-name' }, `${f.path.slice(f.path.lastIndexOf('/') + 1)} · ${formatBytes(utf8Bytes(f.text))}`),
        button(`detach-${f.path}`, '×', () => post({ type: 'detachFile', path: f.path }), { title: `Remove ${f.path}`, secondary: true, icon: true }),
      ),
    ),
  );
}

function send(): void {
  const text = prompt.value;
  if (!text.trim() || state?.streamingId) return;
  post({ type: 'send', text });
  prompt.value = '';
  renderCost();
}

let state: UiState | undefined;
/** Text of the message being streamed (deltas arrive between state updates). */
const streaming = new Map<string, string>();
/** Messages with an open edit box: never re-rendered while open. */
const editing = new Map<string, HTMLTextAreaElement>();
/** Rendered message nodes by id, with the signature they were rendered from. */
const nodes = new Map<string, { node: HTMLElement; sig: string }>();

// ---- regions ----

function renderHeader(s: UiState): void {
  if (!changed('header', [s.tor, s.balance, s.signedIn, s.wallet.total, s.wallet.ready, s.busy, s.refill])) return;
  torState.className = `tor ${s.tor.kind}`;
  torState.textContent = `Tor: ${s.tor.text}`;
  balance.textContent = s.balance !== undefined ? `${s.balance} credits` : s.signedIn ? 'credits: …' : 'not signed in';
  wallet.textContent = `${s.wallet.total} tokens (${s.wallet.ready} ready)`;
  wallet.title = 'Anonymous tokens in the wallet on this machine';
  const act = s.refill ?? s.busy;
  activity.textContent = act ?? '';
  activity.hidden = !act;
}

function renderSelectors(s: UiState): void {
  if (changed('models', s.models)) {
    modelSelect.replaceChildren(...s.models.map((m) => el('option', { value: m.id }, m.id)));
    if (s.models.length === 0) modelSelect.append(el('option', { value: '' }, 'models load once Tor is up'));
    lastSig.delete('model');
  }
  if (changed('model', s.model) && s.model && document.activeElement !== modelSelect) modelSelect.value = s.model;
  if (changed('chats', [s.conversations, s.currentId])) {
    chatSelect.replaceChildren(...s.conversations.map((c) => el('option', { value: c.id }, c.title)));
    chatSelect.value = s.currentId;
  }
}

function renderBanners(s: UiState): void {
  if (changed('error', s.error)) {
    const e = s.error;
    errorBox.hidden = !e;
    errorBox.replaceChildren(
      ...(e
        ? [
            el('span', { class: 'grow' }, e.text),
            ...(e.action ? [button('error-action', e.action.label, () => post({ type: 'command', command: e.action!.command as Extract<FromWebview, { type: 'command' }>['command'] }))] : []),
            button('dismiss-error', '×', () => post({ type: 'dismissError' }), { title: 'Dismiss', secondary: true, icon: true }),
          ]
        : []),
    );
  }
  if (changed('key', s.accountKeyOnce)) {
    const k = s.accountKeyOnce;
    keyBox.hidden = !k;
    keyBox.replaceChildren(
      ...(k
        ? [
            el('strong', {}, 'Your account key — shown once. Write it down: it is the only way back into your account and your credits.'),
            el('code', { id: 'account-key' }, k),
            el('div', { class: 'row' }, button('copy-key', 'Copy', () => post({ type: 'copy', text: k }), { secondary: true }), button('dismiss-key', 'I saved it', () => post({ type: 'dismissKey' }))),
          ]
        : []),
    );
  }
  welcome.hidden = s.signedIn;
  if (changed('waiting', s.waiting)) {
    const w = s.waiting;
    waitingBox.hidden = !w;
    if (w) {
      const when = w.nextReadyAt ? ` The next token is ready in about ${Math.max(1, Math.round((w.nextReadyAt - Date.now()) / 1000))} s.` : '';
      const what =
        w.total < w.needed
          ? `The wallet holds ${w.total} token(s); this message needs ${w.needed}. Tokens are fetched at random times, never right before a chat (so the server cannot match your chat to their issuance): Wait and send waits for the next scheduled refill; Get tokens fetches now.`
          : `${w.ready} of ${w.needed} needed tokens are old enough to use; the rest are still ageing so this chat cannot be matched to their issuance.${when}`;
      waitingBox.replaceChildren(
        el('span', { class: 'grow' }, what),
        w.active ? el('span', { class: 'busy' }, 'Waiting…') : button('wait', 'Wait and send', () => post({ type: 'wait' })),
        ...(w.total < w.needed ? [button('get-tokens-now', 'Get tokens', () => post({ type: 'command', command: 'llmtor.getTokens' }), { secondary: true })] : []),
        button('cancel-wait', 'Cancel', () => post({ type: 'cancelWait' }), { secondary: true }),
      );
    }
  }
}

function messageSig(m: ChatMessage, s: UiState): string {
  const isStreaming = m.id === s.streamingId;
  return JSON.stringify([m.content, m.files?.map((f) => f.path), m.error, m.model, m.credits, isStreaming, !!s.streamingId, isStreaming ? s.busy : undefined]);
}

function renderMessage(m: ChatMessage, s: UiState): HTMLElement {
  const isStreaming = m.id === s.streamingId;
  const content = el('div', { class: 'content' });
  fillContent(content, m, isStreaming ? (streaming.get(m.id) ?? m.content) : m.content, isStreaming);
  const actions = el('div', { class: 'msg-actions' });
  if (m.role === 'user' && !s.streamingId) actions.append(button(`edit-${m.id}`, 'Edit', () => openEditor(m), { secondary: true }));
  if (!isStreaming) actions.append(button(`delete-${m.id}`, 'Delete', () => post({ type: 'delete', id: m.id }), { secondary: true }));
  const meta = m.role === 'assistant' && (m.model || m.credits) ? el('div', { class: 'meta' }, [m.model, m.credits ? `${m.credits} credit${m.credits === 1 ? '' : 's'}` : ''].filter(Boolean).join(' · ')) : '';
  const err = m.error ? el('div', { class: 'msg-error' }, m.error) : '';
  const files = m.files?.length ? el('div', { class: 'chips msg-files' }, ...m.files.map((f) => el('span', { class: 'chip', title: `${f.path} (sent with this message)` }, f.path))) : '';
  return el('div', { class: `msg ${m.role}${isStreaming ? ' streaming' : ''}${m.error ? ' failed' : ''}`, 'data-id': m.id }, files, content, err, meta, actions);
}

function fillContent(content: HTMLElement, m: ChatMessage, text: string, isStreaming: boolean): void {
  if (m.role !== 'assistant') {
    content.textContent = text;
    return;
  }
  const r = renderMarkdown(text);
  // Safe: renderMarkdown escapes all input and emits only a fixed set of tags (see markdown.ts).
  content.innerHTML = r.html;
  content.querySelectorAll<HTMLButtonElement>('button[data-code-index]').forEach((b) => {
    const block = r.codeBlocks[Number(b.dataset['codeIndex'])] ?? { code: '', lang: '' };
    b.classList.add('secondary');
    b.addEventListener('click', () => post(b.classList.contains('apply-code') ? { type: 'applyDiff', text: block.code, lang: block.lang } : { type: b.classList.contains('insert-code') ? 'insert' : 'copy', text: block.code }));
  });
  if (isStreaming && !text) content.append(el('span', { class: 'busy' }, state?.busy ?? 'Waiting for the answer over Tor…'));
}

function openEditor(m: ChatMessage): void {
  const entry = nodes.get(m.id);
  if (!entry) return;
  const ta = el('textarea', { class: 'edit-box', id: `edit-box-${m.id}`, rows: '3', 'aria-label': 'Edit message' });
  ta.value = m.content;
  editing.set(m.id, ta);
  const close = () => {
    editing.delete(m.id);
    lastSig.delete('messages');
    entry.sig = '';
    render();
  };
  const content = entry.node.querySelector('.content')!;
  content.replaceChildren(
    ta,
    el(
      'div',
      { class: 'row' },
      button(`save-${m.id}`, 'Send edited', () => {
        editing.delete(m.id);
        post({ type: 'edit', id: m.id, text: ta.value });
      }),
      button(`cancel-${m.id}`, 'Cancel', close, { secondary: true }),
    ),
  );
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') close();
  });
  ta.focus();
}

function renderMessages(s: UiState): void {
  const atBottom = messagesBox.scrollHeight - messagesBox.scrollTop - messagesBox.clientHeight < 40;
  const ids = new Set(s.messages.map((m) => m.id));
  for (const [id, entry] of nodes) {
    if (ids.has(id)) continue;
    entry.node.remove();
    nodes.delete(id);
    editing.delete(id);
  }
  let before: ChildNode | null = messagesBox.firstChild;
  for (const m of s.messages) {
    let entry = nodes.get(m.id);
    const sig = messageSig(m, s);
    if (!entry) {
      entry = { node: renderMessage(m, s), sig };
      nodes.set(m.id, entry);
    } else if (entry.sig !== sig && !editing.has(m.id)) {
      const fresh = renderMessage(m, s);
      entry.node.replaceWith(fresh);
      if (before === entry.node) before = fresh;
      entry.node = fresh;
      entry.sig = sig;
    }
    // Move only what is out of place (moving a node would drop the focus inside it).
    if (entry.node !== before) messagesBox.insertBefore(entry.node, before);
    before = entry.node.nextSibling;
  }
  empty.textContent = s.historyEnabled ? 'New chat. History stays on this machine only, encrypted.' : 'New chat. History is off: nothing is kept.';
  if (s.messages.length === 0) messagesBox.append(empty);
  else empty.remove();
  if (atBottom) messagesBox.scrollTop = messagesBox.scrollHeight;
}

/** What the message in the composer will cost: the request is the history plus it, as the host sends it. */
function renderCost(): void {
  const s = state;
  const model = s?.models.find((m) => m.id === (modelSelect.value || s.model));
  if (!s || !model) {
    cost.textContent = '';
    return;
  }
  const history = s.messages.filter((m) => !m.error && m.id !== s.streamingId).map((m) => ({ role: m.role, content: withContext(m.content, m.files) }));
  const body = JSON.stringify({ model: model.id, messages: [...history, { role: 'user', content: withContext(prompt.value, s.attachments) }], stream: true });
  const credits = creditsForBytes(model, new TextEncoder().encode(body).length);
  cost.textContent = `${credits} credit${credits === 1 ? '' : 's'}`;
  cost.title = `This message costs ${credits} credit${credits === 1 ? '' : 's'} (${model.priceCredits} per ${Math.round(model.bytesPerCredit / 1000)} kB of request, the whole chat${s.attachments.length ? ' and the attached files' : ''} included)`;
}

function render(): void {
  const s = state;
  if (!s) return;
  renderHeader(s);
  renderSelectors(s);
  renderBanners(s);
  renderMessages(s);
  renderChips(s.attachments);
  renderCost();
  const busy = !!s.streamingId;
  sendBtn.disabled = busy;
  stopBtn.hidden = !busy;
  regenBtn.hidden = busy || s.messages.length === 0;
}

let streamQueued = false;
function renderStreamingSoon(): void {
  if (streamQueued) return;
  streamQueued = true;
  requestAnimationFrame(() => {
    streamQueued = false;
    const s = state;
    const id = s?.streamingId;
    const m = id ? s.messages.find((x) => x.id === id) : undefined;
    const node = id ? nodes.get(id)?.node.querySelector<HTMLElement>('.content') : undefined;
    if (!m || !node) return;
    const atBottom = messagesBox.scrollHeight - messagesBox.scrollTop - messagesBox.clientHeight < 40;
    fillContent(node, m, streaming.get(m.id) ?? m.content, true);
    if (atBottom) messagesBox.scrollTop = messagesBox.scrollHeight;
  });
}

let updates = 0;
const handlers: ToWebviewHandlers = {
  state: (m) => {
    state = m.state;
    // A counter tests read to know a state update arrived.
    app.dataset['updates'] = String(++updates);
    for (const id of [...streaming.keys()]) if (id !== m.state.streamingId) streaming.delete(id);
    render();
  },
  delta: (m) => {
    streaming.set(m.id, (streaming.get(m.id) ?? '') + m.text);
    renderStreamingSoon();
  },
  context: (m) => {
    prompt.value = (prompt.value ? `${prompt.value}\n` : '') + m.text;
    prompt.focus();
    renderCost();
  },
  focus: () => prompt.focus(),
  fileMatches: (m) => {
    // Only the answer to what is typed now (answers to earlier keystrokes are dropped).
    if (m.query !== suggestion.query) return;
    suggestion.paths = m.paths;
    suggestion.index = 0;
    renderSuggest();
  },
};

window.addEventListener('message', (ev: MessageEvent) => {
  const m = ev.data as { type?: unknown };
  if (typeof m?.type === 'string' && m.type in handlers) dispatch(handlers, ev.data as ToWebview);
});

post({ type: 'ready' });

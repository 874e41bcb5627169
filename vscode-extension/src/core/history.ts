/**
 * Chat history, kept only on this machine (VS Code's globalState, or memory when the user
 * turned history off), encrypted at rest when a cipher is given (historyCipher.ts). Pure:
 * the storage and the cipher are passed in.
 */
import { randomUUID } from 'node:crypto';
import { HistoryCipher } from './historyCipher.js';
import type { ChatMessage } from './uiState.js';

export interface StoredMessage extends ChatMessage {
  at: number;
}

export interface Conversation {
  id: string;
  title: string;
  createdAt: number;
  messages: StoredMessage[];
}

export interface KeyValueStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

export class MemoryKeyValueStore implements KeyValueStore {
  private readonly m = new Map<string, unknown>();
  get<T>(key: string): T | undefined {
    return this.m.get(key) as T | undefined;
  }
  async update(key: string, value: unknown): Promise<void> {
    if (value === undefined) this.m.delete(key);
    else this.m.set(key, value);
  }
}

const KEY = 'llmtor.history.v1';
const MAX_CONVERSATIONS = 100;

export class ChatHistory {
  private conversations: Conversation[];
  currentId: string;

  constructor(
    private store: KeyValueStore,
    private persist: boolean,
    private readonly now: () => number = Date.now,
    private readonly cipher?: HistoryCipher,
  ) {
    this.conversations = persist ? this.read() : [];
    this.currentId = this.conversations[0]?.id ?? this.newConversation(false).id;
    // A history stored in plain text by an older version is encrypted now.
    if (persist && cipher && Array.isArray(store.get<unknown>(KEY))) void this.save();
  }

  private read(): Conversation[] {
    const raw = this.store.get<unknown>(KEY);
    let list: unknown = raw;
    if (HistoryCipher.isSealed(raw)) {
      if (!this.cipher) return [];
      try {
        list = this.cipher.open(raw);
      } catch {
        return []; // the key is gone (deleted at sign-out): the stored history is unreadable
      }
    }
    return Array.isArray(list) ? list.filter(isConversation) : [];
  }

  /** Turning history off deletes what was stored; turning it on starts storing from now. */
  async setPersist(persist: boolean): Promise<void> {
    this.persist = persist;
    await (persist ? this.save() : this.store.update(KEY, undefined));
  }

  list(): readonly Conversation[] {
    return this.conversations;
  }

  current(): Conversation {
    return this.conversations.find((c) => c.id === this.currentId) ?? this.newConversation(false);
  }

  newConversation(save = true): Conversation {
    const c: Conversation = { id: randomUUID(), title: 'New chat', createdAt: this.now(), messages: [] };
    this.conversations.unshift(c);
    this.conversations.splice(MAX_CONVERSATIONS);
    this.currentId = c.id;
    if (save) void this.save();
    return c;
  }

  select(id: string): boolean {
    if (!this.conversations.some((c) => c.id === id)) return false;
    this.currentId = id;
    return true;
  }

  add(msg: Omit<StoredMessage, 'id' | 'at'>): StoredMessage {
    const c = this.current();
    const m: StoredMessage = { ...msg, id: randomUUID(), at: this.now() };
    c.messages.push(m);
    if (c.title === 'New chat' && msg.role === 'user') c.title = msg.content.replace(/\s+/g, ' ').trim().slice(0, 60) || 'New chat';
    void this.save();
    return m;
  }

  update(id: string, patch: Partial<Pick<StoredMessage, 'content' | 'error' | 'credits' | 'model'>>): void {
    const m = this.current().messages.find((x) => x.id === id);
    if (!m) return;
    Object.assign(m, patch);
    if (patch.error === undefined && 'error' in patch) delete m.error;
    void this.save();
  }

  /** Edits a user message: everything after it is dropped (its answer no longer fits). */
  edit(id: string, content: string): StoredMessage | undefined {
    const c = this.current();
    const i = c.messages.findIndex((m) => m.id === id);
    if (i < 0 || c.messages[i]!.role !== 'user') return undefined;
    c.messages[i]!.content = content;
    delete c.messages[i]!.error;
    c.messages.splice(i + 1);
    void this.save();
    return c.messages[i];
  }

  delete(id: string): void {
    const c = this.current();
    c.messages = c.messages.filter((m) => m.id !== id);
    void this.save();
  }

  /** Drops the last assistant answer (regenerate); returns the messages to resend. */
  truncateForRegenerate(): StoredMessage[] | undefined {
    const c = this.current();
    while (c.messages.at(-1)?.role === 'assistant') c.messages.pop();
    if (c.messages.length === 0) return undefined;
    void this.save();
    return c.messages;
  }

  async clear(): Promise<void> {
    this.conversations = [];
    this.newConversation(false);
    await this.store.update(KEY, undefined);
  }

  private async save(): Promise<void> {
    if (!this.persist) return;
    const kept = this.conversations.filter((c) => c.messages.length > 0);
    await this.store.update(KEY, this.cipher ? this.cipher.seal(kept) : kept);
  }
}

function isConversation(v: unknown): v is Conversation {
  const c = v as Conversation;
  return !!c && typeof c.id === 'string' && Array.isArray(c.messages);
}

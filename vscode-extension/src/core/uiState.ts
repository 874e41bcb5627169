/**
 * What the extension sends the chat webview to render: one type for both sides. No
 * imports: the webview is type-checked for the browser (no Node types) and bundled alone.
 */

/** One chat message as the webview shows it (history stores it with a timestamp). */
export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  model?: string;
  credits?: number;
  error?: string;
}

export interface WalletCounts {
  /** All unexpired credit tokens. */
  total: number;
  /** Those past their minimum age. */
  ready: number;
  /** When the next cooling-down token becomes ready (undefined if none is cooling). */
  nextReadyAt: number | undefined;
}

export interface UiState {
  signedIn: boolean;
  balance: number | undefined;
  wallet: WalletCounts;
  tor: { kind: string; text: string };
  models: { id: string; priceCredits: number }[];
  model: string | undefined;
  packs: { id: string; label: string }[];
  conversations: { id: string; title: string }[];
  currentId: string;
  messages: ChatMessage[];
  streamingId: string | undefined;
  busy: string | undefined;
  accountKeyOnce: string | undefined;
  waiting: { needed: number; ready: number; total: number; nextReadyAt: number | undefined; active: boolean } | undefined;
  error: string | undefined;
  historyEnabled: boolean;
}

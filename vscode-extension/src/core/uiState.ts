/**
 * The one protocol between the extension and its chat webview, both directions: zod schemas
 * (the host validates everything the webview posts), the types derived from them, and a
 * mapped handler type each side implements so the compiler checks every message is handled.
 * Only `zod` is imported: the webview bundle (browser, no Node types) includes this file.
 */
import { z } from 'zod';
import type { FileContext } from './fileContext.js';

/** One chat message as the webview shows it (history stores it with a timestamp). */
export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  model?: string;
  credits?: number;
  error?: string;
  /** Workspace files attached to a user message (`#file`), sent in its text (fileContext.ts). */
  files?: FileContext[];
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
  models: { id: string; priceCredits: number; bytesPerCredit: number }[];
  model: string | undefined;
  conversations: { id: string; title: string }[];
  currentId: string;
  messages: ChatMessage[];
  streamingId: string | undefined;
  busy: string | undefined;
  /** A refill in progress (scheduled or explicit), in words; undefined when none runs. */
  refill: string | undefined;
  accountKeyOnce: string | undefined;
  waiting: { needed: number; ready: number; total: number; nextReadyAt: number | undefined; active: boolean } | undefined;
  /** A plain-language error and, where one exists, the action that fixes it. */
  error: { text: string; action?: { label: string; command: string } } | undefined;
  historyEnabled: boolean;
  /** Files attached to the message being written (sent with it, then cleared). */
  attachments: FileContext[];
}

const text = z.string().max(2_000_000);
const id = z.string().max(200);

/** Messages the webview sends. Anything else is dropped by the host. */
export const fromWebviewSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready') }),
  z.object({ type: z.literal('send'), text }),
  z.object({ type: z.literal('stop') }),
  z.object({ type: z.literal('regenerate') }),
  z.object({ type: z.literal('edit'), id, text }),
  z.object({ type: z.literal('delete'), id }),
  z.object({ type: z.literal('newChat') }),
  z.object({ type: z.literal('selectChat'), id }),
  z.object({ type: z.literal('selectModel'), id }),
  z.object({ type: z.literal('createAccount') }),
  z.object({ type: z.literal('signIn') }),
  z.object({ type: z.literal('account') }),
  z.object({ type: z.literal('wait') }),
  z.object({ type: z.literal('cancelWait') }),
  z.object({ type: z.literal('dismissKey') }),
  z.object({ type: z.literal('dismissError') }),
  /** Runs one of a fixed set of commands (the action of an error message). */
  z.object({ type: z.literal('command'), command: z.enum(['llmtor.getTokens', 'llmtor.restartTor', 'llmtor.signIn', 'llmtor.buyCredits', 'llmtor.account', 'llmtor.resetKeyPins', 'llmtor.openSettings']) }),
  z.object({ type: z.literal('copy'), text }),
  z.object({ type: z.literal('insert'), text }),
  z.object({ type: z.literal('applyDiff'), text, lang: z.string().max(50) }),
  z.object({ type: z.literal('openLink'), text }),
  /** `#` typed in the composer: which workspace files match (answered with fileMatches). */
  z.object({ type: z.literal('fileQuery'), query: z.string().max(500) }),
  /** Attach a file the host offered in fileMatches (any other path is ignored). */
  z.object({ type: z.literal('attachFile'), path: z.string().max(2000) }),
  z.object({ type: z.literal('detachFile'), path: z.string().max(2000) }),
  /** "+ File": the host's QuickPick of workspace files. */
  z.object({ type: z.literal('pickFiles') }),
]);
export type FromWebview = z.infer<typeof fromWebviewSchema>;

/** Messages the host sends (not validated in the webview: it trusts its host). */
export type ToWebview =
  | { type: 'state'; state: UiState }
  | { type: 'delta'; id: string; text: string }
  | { type: 'context'; text: string }
  | { type: 'focus' }
  | { type: 'fileMatches'; query: string; paths: string[] };

type Handlers<M extends { type: string }, R> = { [T in M['type']]: (m: Extract<M, { type: T }>) => R };
/** One handler per message type; a missing or misspelt one is a compile error. */
export type FromWebviewHandlers = Handlers<FromWebview, unknown>;
export type ToWebviewHandlers = Handlers<ToWebview, void>;

/** Dispatches a message to its handler (the table is total, so no default case exists). */
export function dispatch<M extends { type: string }, R>(handlers: Handlers<M, R>, m: M): R {
  const h = handlers[m.type as M['type']] as (m: M) => R;
  return h(m);
}

/** Credits a request body of `bodyBytes` costs (the server's formula, as in redemptionApi.ts). */
export function creditsForBytes(model: { priceCredits: number; bytesPerCredit: number }, bodyBytes: number): number {
  return model.priceCredits * Math.max(1, Math.ceil(bodyBytes / model.bytesPerCredit));
}

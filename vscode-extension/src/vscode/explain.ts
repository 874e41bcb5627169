/** Errors in plain words for the host side (chat, status, commands). */
import { friendlyError, type FriendlyError } from '../core/friendlyErrors.js';
import { ChallengeRefusedError } from '../core/llmtorClient.js';
import { KeyConsistencyError } from '../core/keyConsistency.js';

/** Plain words with a next step; a possible tagging attempt keeps its exact reason. */
export function explain(e: unknown): FriendlyError {
  if (e instanceof KeyConsistencyError) return { text: e.message, action: { label: 'Reset key pins…', command: 'llmtor.resetKeyPins' } };
  if (e instanceof ChallengeRefusedError) return { text: e.message, action: { label: 'Open settings', command: 'llmtor.openSettings' } };
  return friendlyError(e);
}

export function errorText(e: unknown): string {
  return explain(e).text;
}


/**
 * Key consistency (DESIGN "Privacy invariants"): an issuer that shows each user a different
 * key could recognise that user's tokens at redemption. Before trusting a key, the client
 * fetches the directory over a fresh Tor circuit — as an anonymous member of the crowd —
 * and checks that the key it is about to use (or was issued under) is in it, with the same
 * purpose (and epoch, for transient keys).
 */
import { bytesEqual, fromBase64Url, type IssuerDirectory } from '@llmtor/protocol';
import type { KeyWindow } from './epoch.js';

export class KeyConsistencyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyConsistencyError';
  }
}

function sameKey(a: string, b: string): boolean {
  try {
    return bytesEqual(fromBase64Url(a, 'token-key'), fromBase64Url(b, 'token-key'));
  } catch {
    return false;
  }
}

/** Throws KeyConsistencyError unless `key` is what the public (Tor-fetched) directory shows. */
export function checkKeyConsistency(key: Pick<KeyWindow, 'tokenKey' | 'purpose' | 'epoch'>, publicDirectory: IssuerDirectory): void {
  const match = publicDirectory['token-keys'].find((k) => sameKey(k['token-key'], key.tokenKey));
  if (!match) {
    throw new KeyConsistencyError(
      `the ${key.purpose} key the issuer offered is not in the directory everyone sees over Tor; it could be a key made to recognise you. No tokens were requested under it.`,
    );
  }
  if ((match.purpose ?? 'credit') !== key.purpose) {
    throw new KeyConsistencyError(`the issuer offered a key as "${key.purpose}" that the public directory lists as "${match.purpose ?? 'credit'}"`);
  }
  if (key.purpose === 'transient' && match.epoch !== key.epoch) {
    throw new KeyConsistencyError(`the issuer offered a transient key for epoch ${key.epoch ?? '?'} that the public directory lists for ${match.epoch ?? 'no epoch'}`);
  }
}

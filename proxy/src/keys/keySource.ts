/** Where signing keys come from: a directory of key files, or ephemeral demo keys. */
import type { KeyObject } from 'node:crypto';
import type { KeyEntry } from '@llmtor/protocol';

export interface LoadedKeys {
  entries: KeyEntry[];
  /** Private keys by hex key id; empty when the process does not issue (redemption-only pods never open them). */
  privateKeys: Map<string, KeyObject>;
  /** Files that were skipped, with the reason (logged by the manager, named by /readyz). */
  problems: KeyFileProblem[];
}

export interface KeySource {
  readonly description: string;
  load(): Promise<LoadedKeys>;
  /** A path to watch for changes, if any. */
  readonly watchPath?: string;
}

export interface KeyFileProblem {
  file: string;
  message: string;
  /** Set when the file parsed but its private key did not open (e.g. its key-encryption key is missing). */
  key?: { keyId: string; purpose: string; epoch?: string; issuanceEnd: string };
}

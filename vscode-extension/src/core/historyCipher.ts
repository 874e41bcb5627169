/**
 * Chat history encrypted at rest: AES-256-GCM under a random key kept in the secret store
 * (VS Code's SecretStorage, i.e. the OS keychain), so the history file in globalState is
 * unreadable without it. Deleting the key (sign-out with "delete history") makes any copy of
 * the file useless.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { SecretStore } from './wallet.js';

export const HISTORY_KEY_SECRET = 'llmtor.historyKey.v1';
const PREFIX = 'aes256gcm.v1.';

export class HistoryCipher {
  private constructor(private readonly key: Buffer) {}

  /** The key from the secret store, created on first use. */
  static async fromSecrets(secrets: SecretStore): Promise<HistoryCipher> {
    const stored = await secrets.get(HISTORY_KEY_SECRET);
    if (stored) {
      const key = Buffer.from(stored, 'base64');
      if (key.length === 32) return new HistoryCipher(key);
    }
    const key = randomBytes(32);
    await secrets.store(HISTORY_KEY_SECRET, key.toString('base64'));
    return new HistoryCipher(key);
  }

  static isSealed(v: unknown): v is string {
    return typeof v === 'string' && v.startsWith(PREFIX);
  }

  seal(value: unknown): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const ct = Buffer.concat([c.update(JSON.stringify(value), 'utf8'), c.final()]);
    return PREFIX + Buffer.concat([iv, c.getAuthTag(), ct]).toString('base64');
  }

  /** Throws if the text was not sealed with this key (or was changed). */
  open(text: string): unknown {
    const raw = Buffer.from(text.slice(PREFIX.length), 'base64');
    const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(12, 28));
    return JSON.parse(Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8'));
  }
}

/**
 * Persists the key-consistency pins (keyConsistency.ts) in the secret store, beside the
 * wallet: the issuer name, what was seen for each key id, and the last directory that passed.
 */
import { emptyPins, type PinDoc } from './keyConsistency.js';
import type { SecretStore } from './wallet.js';

export const PINS_SECRET_KEY = 'llmtor.pins.v1';

export class PinStore {
  private doc: PinDoc | undefined;

  constructor(
    private readonly store: SecretStore,
    private readonly key = PINS_SECRET_KEY,
  ) {}

  async get(): Promise<PinDoc> {
    if (this.doc) return this.doc;
    const raw = await this.store.get(this.key);
    let doc = emptyPins();
    if (raw) {
      try {
        const parsed = JSON.parse(raw) as PinDoc;
        if (parsed && parsed.v === 1 && typeof parsed.keys === 'object' && parsed.keys !== null) doc = parsed;
      } catch {
        // Unreadable pins: start over (the next directory is pinned afresh).
      }
    }
    this.doc = doc;
    return doc;
  }

  async set(doc: PinDoc): Promise<void> {
    this.doc = doc;
    await this.store.store(this.key, JSON.stringify(doc));
  }

  async clear(): Promise<void> {
    this.doc = undefined;
    await this.store.delete(this.key);
  }
}

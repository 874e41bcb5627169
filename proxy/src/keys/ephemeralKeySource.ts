/**
 * Keys the proxy generates for itself (local demo only): one credit key, one
 * permanent key and the current month's transient key, kept in memory. Tokens
 * die with the process; the manager logs loudly that these keys are ephemeral.
 */
import type { KeyObject } from 'node:crypto';
import { epochBounds, epochOf, keyEntry, keyMetadata, type KeyEntry, type KeyMetadata } from '@llmtor/protocol';
import { generateSigningKey } from '@llmtor/protocol/server';
import type { KeySource, LoadedKeys } from './keySource.js';

const DAY = 86_400_000;

export async function generateEphemeralKeys(now: number): Promise<{ entries: KeyEntry[]; privateKeys: Map<string, KeyObject> }> {
  const epoch = epochOf(new Date(now));
  const { end } = epochBounds(epoch);
  const iso = (t: number) => new Date(t).toISOString();
  const specs: Omit<KeyMetadata, 'keyId' | 'publicKey'>[] = [
    { purpose: 'credit', notBefore: iso(now - 60_000), issuanceEnd: iso(now + 30 * DAY), redemptionEnd: iso(now + 60 * DAY) },
    { purpose: 'permanent', notBefore: iso(now - 60_000), issuanceEnd: iso(now + 3650 * DAY), redemptionEnd: iso(now + 3650 * DAY) },
    { purpose: 'transient', epoch, notBefore: iso(now - 60_000), issuanceEnd: iso(end.getTime()), redemptionEnd: iso(end.getTime() + 7 * DAY) },
  ];
  const entries: KeyEntry[] = [];
  const privateKeys = new Map<string, KeyObject>();
  const usedTruncated = new Set<number>();
  for (const spec of specs) {
    // RFC 9578: two live keys must not share the truncated key id; draw again if they do.
    for (;;) {
      const key = await generateSigningKey();
      const entry = keyEntry(keyMetadata(key, spec));
      if (usedTruncated.has(entry.truncatedId)) continue;
      usedTruncated.add(entry.truncatedId);
      entries.push(entry);
      privateKeys.set(entry.meta.keyId, key);
      break;
    }
  }
  return { entries, privateKeys };
}

export class EphemeralKeySource implements KeySource {
  readonly description = 'ephemeral keys generated in memory (demo only: tokens die with this process)';
  private keys?: Promise<{ entries: KeyEntry[]; privateKeys: Map<string, KeyObject> }>;
  constructor(private readonly now: () => number) {}
  async load(): Promise<LoadedKeys> {
    this.keys ??= generateEphemeralKeys(this.now());
    const k = await this.keys;
    return { entries: k.entries, privateKeys: k.privateKeys, problems: [] };
  }
}

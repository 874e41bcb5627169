/** A signer on the test keys that can be told to fail (all, or some items) or to be slow. */
import type { KeyObject } from 'node:crypto';
import { ProtocolError } from '@llmtor/protocol';
import { BlindSigner } from '@llmtor/protocol/server';

export interface ControllableSigner {
  fail: (i: number) => boolean;
  delayMs: number;
  /** When set, signing waits for this promise (a pod stalled mid-request). */
  gate: Promise<void> | undefined;
  signBatch(keyId: string, msgs: readonly Uint8Array[]): Promise<(Uint8Array | ProtocolError)[]>;
}

export function controllableSigner(privateKeys: Map<string, KeyObject>): ControllableSigner {
  const signers = new Map([...privateKeys].map(([id, k]) => [id, new BlindSigner(k)]));
  const s: ControllableSigner = {
    fail: () => false,
    delayMs: 0,
    gate: undefined,
    async signBatch(keyId, msgs) {
      if (s.delayMs) await new Promise((r) => setTimeout(r, s.delayMs));
      if (s.gate) await s.gate;
      return msgs.map((m, i) => (s.fail(i) ? new ProtocolError('signing_failure', 'injected fault') : signers.get(keyId)!.sign(m)));
    },
  };
  return s;
}

/** What issuance needs from a signer: the protocol package's SignerPool satisfies it. */
import type { ProtocolError } from '@llmtor/protocol';

export interface BatchSigner {
  signBatch(keyId: string, msgs: readonly Uint8Array[]): Promise<(Uint8Array | ProtocolError)[]>;
}

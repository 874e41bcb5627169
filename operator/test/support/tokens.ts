/** Issues a real Privacy Pass token (blindrsa client, native signer) under a key, as the proxy would. */
import type { KeyObject } from 'node:crypto';
import { challengeDigest, defaultChallenge, keyEntry, Keyring, openSigningKeyFile, verifyToken, type KeyUnwrapper, type SigningKeyFile } from '@llmtor/protocol';
import { TokenClient } from '@llmtor/protocol/client';
import { BlindSigner } from '@llmtor/protocol/server';
import { metadataOf } from '../../src/index.js';

export const ISSUER_NAME = 'llmtor.test';

export async function issueToken(file: SigningKeyFile, privateKey: KeyObject): Promise<Uint8Array> {
  const client = await TokenClient.forKey(file.publicKey);
  const { request, pending } = await client.createRequest(defaultChallenge(ISSUER_NAME));
  const blindSig = new BlindSigner(privateKey).sign(request.blindedMsg);
  return client.finalize(pending, { blindSig });
}

/** The proxy's view of a key directory: a Keyring of the files (public parts) plus the opened private keys. */
export async function loadLikeProxy(files: Iterable<SigningKeyFile>, unwrapper?: KeyUnwrapper): Promise<{ ring: Keyring; keys: Map<string, KeyObject> }> {
  const list = [...files];
  const keys = new Map<string, KeyObject>();
  for (const f of list) keys.set(f.keyId, await openSigningKeyFile(f, unwrapper));
  return { ring: new Keyring(list.map((f) => keyEntry(metadataOf(f)))), keys };
}

/** Redemption-side check: the token verifies under a key that is inside its redemption window at `now`. */
export function redeem(ring: Keyring, token: Uint8Array, now: number): void {
  verifyToken(token, (id) => ring.redeeming(id, now)?.publicKey, challengeDigest(defaultChallenge(ISSUER_NAME)));
}

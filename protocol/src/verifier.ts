/** Native token verification: RSASSA-PSS, SHA-384, MGF1-SHA-384, salt length 48 (explicit: Node would otherwise accept any salt length). */
import { constants, verify, type KeyObject } from 'node:crypto';
import { bytesEqual } from './bytes.js';
import { PSS_SALT_LENGTH, TOKEN_INPUT_LENGTH } from './constants.js';
import { ProtocolError } from './errors.js';
import { decodeToken, type Token } from './token.js';

/** Checks the authenticator of `token` with `publicKey`. Throws `bad_signature` if it does not verify. */
export function verifyTokenSignature(token: Uint8Array, publicKey: KeyObject): void {
  if (token.length <= TOKEN_INPUT_LENGTH) throw new ProtocolError('wrong_length', 'token too short');
  let ok = false;
  try {
    ok = verify(
      'sha384',
      token.subarray(0, TOKEN_INPUT_LENGTH),
      { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH },
      token.subarray(TOKEN_INPUT_LENGTH),
    );
  } catch {
    ok = false;
  }
  if (!ok) throw new ProtocolError('bad_signature', 'token signature does not verify');
}

/**
 * Decodes and verifies a token: type, length, key id (via `lookup`), challenge
 * digest (if given) and signature. Returns the decoded token.
 */
export function verifyToken(
  tokenBytes: Uint8Array,
  lookup: (keyId: Uint8Array) => KeyObject | undefined,
  expectedChallengeDigest?: Uint8Array,
): Token {
  const token = decodeToken(tokenBytes);
  const key = lookup(token.tokenKeyId);
  if (!key) throw new ProtocolError('unknown_key_id', 'token was issued under a key that is not (or no longer) accepted');
  if (expectedChallengeDigest && !bytesEqual(token.challengeDigest, expectedChallengeDigest)) {
    throw new ProtocolError('challenge_mismatch', 'token was made for a different challenge');
  }
  verifyTokenSignature(tokenBytes, key);
  return token;
}

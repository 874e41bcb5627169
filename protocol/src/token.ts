/** Token (RFC 9577 §2.2) for type 0x0002: 354 bytes. */
import { readU16, writeU16 } from './bytes.js';
import {
  CHALLENGE_DIGEST_LENGTH,
  NID,
  NK,
  NONCE_LENGTH,
  TOKEN_INPUT_LENGTH,
  TOKEN_LENGTH,
  TOKEN_TYPE_BLIND_RSA,
} from './constants.js';
import { ProtocolError } from './errors.js';

export interface Token {
  tokenType: number;
  nonce: Uint8Array;
  challengeDigest: Uint8Array;
  tokenKeyId: Uint8Array;
  authenticator: Uint8Array;
}

function checkLen(what: string, b: Uint8Array, n: number): void {
  if (!(b instanceof Uint8Array) || b.length !== n) {
    throw new ProtocolError('wrong_length', `${what} must be ${n} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`);
  }
}

/** token_type | nonce | challenge_digest | token_key_id: the message the authenticator signs. */
export function encodeTokenInput(t: Omit<Token, 'authenticator'>): Uint8Array {
  if (t.tokenType !== TOKEN_TYPE_BLIND_RSA) throw new ProtocolError('wrong_token_type', `token type ${t.tokenType} is not 0x0002`);
  checkLen('nonce', t.nonce, NONCE_LENGTH);
  checkLen('challenge_digest', t.challengeDigest, CHALLENGE_DIGEST_LENGTH);
  checkLen('token_key_id', t.tokenKeyId, NID);
  const out = new Uint8Array(TOKEN_INPUT_LENGTH);
  writeU16(out, 0, t.tokenType);
  out.set(t.nonce, 2);
  out.set(t.challengeDigest, 2 + NONCE_LENGTH);
  out.set(t.tokenKeyId, 2 + NONCE_LENGTH + CHALLENGE_DIGEST_LENGTH);
  return out;
}

export function encodeToken(t: Token): Uint8Array {
  checkLen('authenticator', t.authenticator, NK);
  const out = new Uint8Array(TOKEN_LENGTH);
  out.set(encodeTokenInput(t), 0);
  out.set(t.authenticator, TOKEN_INPUT_LENGTH);
  return out;
}

/** Decodes a token; fields are views into `b`. */
export function decodeToken(b: Uint8Array): Token {
  if (!(b instanceof Uint8Array)) throw new ProtocolError('malformed', 'token must be bytes');
  if (b.length < 2) throw new ProtocolError('wrong_length', `token must be ${TOKEN_LENGTH} bytes, got ${b.length}`);
  const tokenType = readU16(b, 0);
  if (tokenType !== TOKEN_TYPE_BLIND_RSA) {
    throw new ProtocolError('wrong_token_type', `token type 0x${tokenType.toString(16).padStart(4, '0')} is not supported (only 0x0002)`);
  }
  if (b.length !== TOKEN_LENGTH) throw new ProtocolError('wrong_length', `token must be ${TOKEN_LENGTH} bytes, got ${b.length}`);
  let off = 2;
  const nonce = b.subarray(off, (off += NONCE_LENGTH));
  const challengeDigest = b.subarray(off, (off += CHALLENGE_DIGEST_LENGTH));
  const tokenKeyId = b.subarray(off, (off += NID));
  const authenticator = b.subarray(off, (off += NK));
  return { tokenType, nonce, challengeDigest, tokenKeyId, authenticator };
}

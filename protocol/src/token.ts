/**
 * Token (RFC 9577 §2.2) for type 0x0002 (RFC 9578 §6): 354 bytes, and the
 * token input the authenticator signs (RFC 9578 §6.3, §6.4).
 */
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

/**
 * RFC 9577 §2.2, with Nid = 32 and Nk = 256 for type 0x0002:
 *
 *   struct {
 *       uint16_t token_type = 0x0002;
 *       uint8_t nonce[32];
 *       uint8_t challenge_digest[32];
 *       uint8_t token_key_id[Nid];
 *       uint8_t authenticator[Nk];
 *   } Token;
 */
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

/**
 * The message the authenticator signs (RFC 9578 §6.3: token_input, the Token
 * without its authenticator):
 *
 *   token_input = concat(0x0002, nonce, challenge_digest, token_key_id)
 */
export type TokenInput = Omit<Token, 'authenticator'>;

export function encodeTokenInput(t: TokenInput): Uint8Array {
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

/** Checks the type (first: a grease or other type is named as such) and then the length. */
function checkTypeAndLength(what: string, b: Uint8Array, length: number): void {
  if (!(b instanceof Uint8Array)) throw new ProtocolError('malformed', `${what} must be bytes`);
  if (b.length < 2) throw new ProtocolError('wrong_length', `${what} must be ${length} bytes, got ${b.length}`);
  const tokenType = readU16(b, 0);
  if (tokenType !== TOKEN_TYPE_BLIND_RSA) {
    throw new ProtocolError('wrong_token_type', `token type 0x${tokenType.toString(16).padStart(4, '0')} is not supported (only 0x0002)`);
  }
  if (b.length !== length) throw new ProtocolError('wrong_length', `${what} must be ${length} bytes, got ${b.length}`);
}

/** The token input fields of `b` (a token input or a whole token), in wire order; views into `b`. */
function readTokenInput(b: Uint8Array): TokenInput {
  let off = 0;
  const tokenType = readU16(b, off);
  off += 2;
  const nonce = b.subarray(off, (off += NONCE_LENGTH));
  const challengeDigest = b.subarray(off, (off += CHALLENGE_DIGEST_LENGTH));
  const tokenKeyId = b.subarray(off, (off += NID));
  return { tokenType, nonce, challengeDigest, tokenKeyId };
}

/** Decodes a token input (98 bytes: what a client keeps between blind and finalize); fields are views into `b`. */
export function decodeTokenInput(b: Uint8Array): TokenInput {
  checkTypeAndLength('token input', b, TOKEN_INPUT_LENGTH);
  return readTokenInput(b);
}

/** Decodes a token; fields are views into `b`. */
export function decodeToken(b: Uint8Array): Token {
  checkTypeAndLength('token', b, TOKEN_LENGTH);
  return { ...readTokenInput(b), authenticator: b.subarray(TOKEN_INPUT_LENGTH, TOKEN_INPUT_LENGTH + NK) };
}

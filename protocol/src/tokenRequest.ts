/** TokenRequest (259 bytes) and TokenResponse (256 bytes) for type 0x0002 (RFC 9578 §6.1–6.2). */
import { readU16, writeU16 } from './bytes.js';
import { NK, TOKEN_REQUEST_LENGTH, TOKEN_RESPONSE_LENGTH, TOKEN_TYPE_BLIND_RSA } from './constants.js';
import { ProtocolError } from './errors.js';

/**
 * RFC 9578 §6.1, with Nk = 256:
 *
 *   struct {
 *       uint16_t token_type = 0x0002;  (Type Blind RSA, 2048-bit)
 *       uint8_t truncated_token_key_id;
 *       uint8_t blinded_msg[Nk];
 *   } TokenRequest;
 */
export interface TokenRequest {
  tokenType: number;
  /** Last byte of token_key_id. */
  truncatedTokenKeyId: number;
  blindedMsg: Uint8Array;
}

/**
 * RFC 9578 §6.2, with Nk = 256:
 *
 *   struct {
 *       uint8_t blind_sig[Nk];
 *   } TokenResponse;
 */
export interface TokenResponse {
  blindSig: Uint8Array;
}

export function encodeTokenRequest(r: TokenRequest): Uint8Array {
  if (r.tokenType !== TOKEN_TYPE_BLIND_RSA) throw new ProtocolError('wrong_token_type', `token type ${r.tokenType} is not 0x0002`);
  if (!Number.isInteger(r.truncatedTokenKeyId) || r.truncatedTokenKeyId < 0 || r.truncatedTokenKeyId > 255) {
    throw new ProtocolError('malformed', 'truncated_token_key_id must be one byte');
  }
  if (r.blindedMsg.length !== NK) throw new ProtocolError('wrong_length', `blinded_msg must be ${NK} bytes, got ${r.blindedMsg.length}`);
  const out = new Uint8Array(TOKEN_REQUEST_LENGTH);
  writeU16(out, 0, r.tokenType);
  out[2] = r.truncatedTokenKeyId;
  out.set(r.blindedMsg, 3);
  return out;
}

export function decodeTokenRequest(b: Uint8Array): TokenRequest {
  if (!(b instanceof Uint8Array)) throw new ProtocolError('malformed', 'TokenRequest must be bytes');
  if (b.length < 2) throw new ProtocolError('wrong_length', `TokenRequest must be ${TOKEN_REQUEST_LENGTH} bytes, got ${b.length}`);
  const tokenType = readU16(b, 0);
  if (tokenType !== TOKEN_TYPE_BLIND_RSA) {
    throw new ProtocolError('wrong_token_type', `token type 0x${tokenType.toString(16).padStart(4, '0')} is not supported (only 0x0002)`);
  }
  if (b.length !== TOKEN_REQUEST_LENGTH) {
    throw new ProtocolError('wrong_length', `TokenRequest must be ${TOKEN_REQUEST_LENGTH} bytes, got ${b.length}`);
  }
  return { tokenType, truncatedTokenKeyId: b[2]!, blindedMsg: b.subarray(3) };
}

export function encodeTokenResponse(r: TokenResponse): Uint8Array {
  if (r.blindSig.length !== TOKEN_RESPONSE_LENGTH) {
    throw new ProtocolError('wrong_length', `blind_sig must be ${TOKEN_RESPONSE_LENGTH} bytes, got ${r.blindSig.length}`);
  }
  return r.blindSig.slice();
}

export function decodeTokenResponse(b: Uint8Array): TokenResponse {
  if (!(b instanceof Uint8Array)) throw new ProtocolError('malformed', 'TokenResponse must be bytes');
  if (b.length !== TOKEN_RESPONSE_LENGTH) {
    throw new ProtocolError('wrong_length', `TokenResponse must be ${TOKEN_RESPONSE_LENGTH} bytes, got ${b.length}`);
  }
  return { blindSig: b };
}

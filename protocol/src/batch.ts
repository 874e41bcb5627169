/**
 * Generic Token Batch Issuance (draft-ietf-privacypass-batched-tokens-08 §6),
 * restricted to token type 0x0002:
 *
 *   struct { GenericTokenRequest generic_token_requests<V>; } GenericBatchTokenRequest;   (§6.1)
 *   struct { OptionalTokenResponse optional_token_responses<V>; } GenericBatchTokenResponse; (§6.2)
 *
 * where `<V>` is a QUIC varint byte length with minimal encoding (§4.2) and
 * each GenericTokenRequest is the RFC 9578 §6.1 TokenRequest itself (259
 * bytes: its own leading token_type is the item's type), as the draft's test
 * vectors (Appendix A.4: `4103 0002 08…`), @cloudflare/privacypass-ts and the
 * Rust `privacypass` crate frame it. Each OptionalTokenResponse is present(1)
 * [ || token_type(2) || blind_sig(256) ] (§4.1, §6.2); an absent response means
 * the issuer refused that one request (for example: the purpose's quota is used up).
 *
 * Before this framing was fixed, LLM-Tor clients wrote each item as
 * `0x0002 || TokenRequest` (261 bytes). For one release the decoder still
 * accepts that, only when it cannot be read the draft's way: the body length
 * is a multiple of 261 and not of 259 (259 and 261 are coprime, so below 259
 * items the two never coincide) and every item starts 0x0002 0x0002.
 */
import { readU16, readVarint, varintLength, writeU16, writeVarint } from './bytes.js';
import { NK, TOKEN_REQUEST_LENGTH, TOKEN_TYPE_BLIND_RSA } from './constants.js';
import { ProtocolError } from './errors.js';
import { decodeTokenRequest, encodeTokenRequest, type TokenRequest, type TokenResponse } from './tokenRequest.js';

const ITEM_LEN = TOKEN_REQUEST_LENGTH;
/** The pre-draft framing `0x0002 || TokenRequest`, accepted for one release (deprecated). */
const LEGACY_ITEM_LEN = 2 + TOKEN_REQUEST_LENGTH;
const RESP_ITEM_LEN = 1 + 2 + NK;

export function encodeBatchTokenRequest(reqs: readonly TokenRequest[]): Uint8Array {
  const body = reqs.length * ITEM_LEN;
  const out = new Uint8Array(varintLength(body) + body);
  let off = writeVarint(out, 0, body);
  for (const r of reqs) {
    out.set(encodeTokenRequest(r), off);
    off += ITEM_LEN;
  }
  return out;
}

export type BatchFraming = 'draft' | 'legacy-261';

/**
 * Decodes a batch request and says which framing it used. `maxItems` bounds
 * the work before any item is parsed (a 422 for an oversized batch, before the
 * issuer spends CPU).
 */
export function decodeBatchTokenRequestFramed(b: Uint8Array, maxItems = Number.MAX_SAFE_INTEGER): { requests: TokenRequest[]; framing: BatchFraming } {
  if (!(b instanceof Uint8Array)) throw new ProtocolError('malformed', 'batch request must be bytes');
  const [len, n] = readVarint(b, 0);
  if (n + len !== b.length) throw new ProtocolError('wrong_length', `batch request length prefix says ${len} bytes, body has ${b.length - n}`);
  if (len === 0) throw new ProtocolError('malformed', 'batch request is empty');
  const legacy = len % ITEM_LEN !== 0 && len % LEGACY_ITEM_LEN === 0 && isLegacyFraming(b, n, len / LEGACY_ITEM_LEN);
  const itemLen = legacy ? LEGACY_ITEM_LEN : ITEM_LEN;
  if (len % itemLen !== 0) throw new ProtocolError('wrong_length', `batch request items must be ${ITEM_LEN}-byte TokenRequests (type 0x0002)`);
  const count = len / itemLen;
  if (count > maxItems) throw new ProtocolError('wrong_length', `batch of ${count} token requests exceeds the limit of ${maxItems}`);
  const skip = legacy ? 2 : 0;
  const out: TokenRequest[] = new Array(count);
  for (let i = 0, off = n; i < count; i++, off += itemLen) {
    const t = readU16(b, off + skip);
    if (t !== TOKEN_TYPE_BLIND_RSA) {
      throw new ProtocolError('wrong_token_type', `batch item ${i}: token type 0x${t.toString(16).padStart(4, '0')} is not supported (only 0x0002)`);
    }
    out[i] = decodeTokenRequest(b.subarray(off + skip, off + itemLen));
  }
  return { requests: out, framing: legacy ? 'legacy-261' : 'draft' };
}

/** `decodeBatchTokenRequestFramed` without the framing. */
export function decodeBatchTokenRequest(b: Uint8Array, maxItems = Number.MAX_SAFE_INTEGER): TokenRequest[] {
  return decodeBatchTokenRequestFramed(b, maxItems).requests;
}

function isLegacyFraming(b: Uint8Array, start: number, count: number): boolean {
  for (let i = 0, off = start; i < count; i++, off += LEGACY_ITEM_LEN) {
    if (readU16(b, off) !== TOKEN_TYPE_BLIND_RSA || readU16(b, off + 2) !== TOKEN_TYPE_BLIND_RSA) return false;
  }
  return true;
}

export function encodeBatchTokenResponse(resps: readonly (TokenResponse | null)[]): Uint8Array {
  let body = 0;
  for (const r of resps) body += r ? RESP_ITEM_LEN : 1;
  const out = new Uint8Array(varintLength(body) + body);
  let off = writeVarint(out, 0, body);
  for (const r of resps) {
    if (!r) {
      out[off++] = 0;
      continue;
    }
    if (r.blindSig.length !== NK) throw new ProtocolError('wrong_length', `blind_sig must be ${NK} bytes`);
    out[off] = 1;
    writeU16(out, off + 1, TOKEN_TYPE_BLIND_RSA);
    out.set(r.blindSig, off + 3);
    off += RESP_ITEM_LEN;
  }
  return out;
}

export function decodeBatchTokenResponse(b: Uint8Array): (TokenResponse | null)[] {
  if (!(b instanceof Uint8Array)) throw new ProtocolError('malformed', 'batch response must be bytes');
  const [len, n] = readVarint(b, 0);
  if (n + len !== b.length) throw new ProtocolError('wrong_length', `batch response length prefix says ${len} bytes, body has ${b.length - n}`);
  const out: (TokenResponse | null)[] = [];
  let off = n;
  while (off < b.length) {
    const present = b[off]!;
    if (present === 0) {
      out.push(null);
      off += 1;
      continue;
    }
    if (present !== 1) throw new ProtocolError('malformed', `batch response item ${out.length}: presence octet must be 0 or 1`);
    if (off + RESP_ITEM_LEN > b.length) throw new ProtocolError('wrong_length', `batch response item ${out.length} is truncated`);
    const t = readU16(b, off + 1);
    if (t !== TOKEN_TYPE_BLIND_RSA) throw new ProtocolError('wrong_token_type', `batch response item ${out.length}: token type ${t} is not 0x0002`);
    out.push({ blindSig: b.subarray(off + 3, off + RESP_ITEM_LEN) });
    off += RESP_ITEM_LEN;
  }
  return out;
}

/**
 * Generic batched issuance (draft-ietf-privacypass-batched-tokens-04, §"Generic
 * Token Batch Issuance"), restricted to token type 0x0002:
 *
 *   GenericBatchTokenRequest  = varint(len) || { token_type(2) || TokenRequest(259) }*
 *   GenericBatchTokenResponse = varint(len) || { present(1) [ || token_type(2) || blind_sig(256) ] }*
 *
 * `varint` is the QUIC variable-length integer with minimal encoding; `len` is
 * the byte length of the vector. An absent response (present = 0) means the
 * issuer refused that one request (for example: the purpose's quota is used up).
 * The draft's token_type prefix duplicates the one inside TokenRequest; we
 * require both to be 0x0002.
 */
import { readU16, readVarint, varintLength, writeU16, writeVarint } from './bytes.js';
import { NK, TOKEN_REQUEST_LENGTH, TOKEN_TYPE_BLIND_RSA } from './constants.js';
import { ProtocolError } from './errors.js';
import { decodeTokenRequest, encodeTokenRequest, type TokenRequest, type TokenResponse } from './tokenRequest.js';

const ITEM_LEN = 2 + TOKEN_REQUEST_LENGTH;
const RESP_ITEM_LEN = 1 + 2 + NK;

export function encodeBatchTokenRequest(reqs: readonly TokenRequest[]): Uint8Array {
  const body = reqs.length * ITEM_LEN;
  const out = new Uint8Array(varintLength(body) + body);
  let off = writeVarint(out, 0, body);
  for (const r of reqs) {
    writeU16(out, off, r.tokenType);
    out.set(encodeTokenRequest(r), off + 2);
    off += ITEM_LEN;
  }
  return out;
}

/**
 * Decodes a batch request. `maxItems` bounds the work before any item is parsed
 * (a 422 for an oversized batch, before the issuer spends CPU).
 */
export function decodeBatchTokenRequest(b: Uint8Array, maxItems = Number.MAX_SAFE_INTEGER): TokenRequest[] {
  if (!(b instanceof Uint8Array)) throw new ProtocolError('malformed', 'batch request must be bytes');
  const [len, n] = readVarint(b, 0);
  if (n + len !== b.length) throw new ProtocolError('wrong_length', `batch request length prefix says ${len} bytes, body has ${b.length - n}`);
  if (len === 0) throw new ProtocolError('malformed', 'batch request is empty');
  if (len % ITEM_LEN !== 0) throw new ProtocolError('wrong_length', `batch request items must be ${ITEM_LEN} bytes each (type 0x0002)`);
  const count = len / ITEM_LEN;
  if (count > maxItems) throw new ProtocolError('wrong_length', `batch of ${count} token requests exceeds the limit of ${maxItems}`);
  const out: TokenRequest[] = new Array(count);
  for (let i = 0, off = n; i < count; i++, off += ITEM_LEN) {
    const outer = readU16(b, off);
    if (outer !== TOKEN_TYPE_BLIND_RSA) {
      throw new ProtocolError('wrong_token_type', `batch item ${i}: token type 0x${outer.toString(16).padStart(4, '0')} is not supported (only 0x0002)`);
    }
    out[i] = decodeTokenRequest(b.subarray(off + 2, off + ITEM_LEN));
  }
  return out;
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

/**
 * Parsing and checking an issuance request before anything is debited (pure).
 * Everything a client can get wrong is a 4xx here: media type (415), framing,
 * batch size, token type, unknown or expired key id, a blinded message that is
 * not below the modulus (422).
 */
import { createHash } from 'node:crypto';
import {
  decodeBatchTokenRequest,
  decodeTokenRequest,
  isProtocolError,
  MEDIA_TYPE_BATCH_REQUEST,
  MEDIA_TYPE_BATCH_RESPONSE,
  MEDIA_TYPE_TOKEN_REQUEST,
  MEDIA_TYPE_TOKEN_RESPONSE,
  type KeyEntry,
  type Keyring,
  type TokenRequest,
} from '@llmtor/protocol';
import { ApiError } from '../http/apiError.js';

export type IssuanceShape = 'single' | 'batch';

export interface ParsedIssuance {
  shape: IssuanceShape;
  requests: TokenRequest[];
  truncatedId: number;
}

export function shapeOfMediaType(mediaType: string): IssuanceShape {
  if (mediaType === MEDIA_TYPE_TOKEN_REQUEST) return 'single';
  if (mediaType === MEDIA_TYPE_BATCH_REQUEST) return 'batch';
  throw new ApiError('unsupported_media_type', `send Content-Type: ${MEDIA_TYPE_TOKEN_REQUEST} or ${MEDIA_TYPE_BATCH_REQUEST}`);
}

export function responseMediaType(shape: IssuanceShape): string {
  return shape === 'single' ? MEDIA_TYPE_TOKEN_RESPONSE : MEDIA_TYPE_BATCH_RESPONSE;
}

/**
 * Largest body read at all (413 beyond): twice the batch limit plus slack, so a
 * batch that is merely over the item limit gets the specific 422 from the decoder.
 */
export function maxBodyBytes(maxBatch: number): number {
  return 65_536 + 2 * maxBatch * 261;
}

export function parseIssuanceBody(shape: IssuanceShape, body: Uint8Array, maxBatch: number): ParsedIssuance {
  let requests: TokenRequest[];
  try {
    requests = shape === 'single' ? [decodeTokenRequest(body)] : decodeBatchTokenRequest(body, maxBatch);
  } catch (e) {
    if (isProtocolError(e)) throw new ApiError('malformed_request', e.message, { details: { reason: e.code } });
    throw e;
  }
  const truncatedId = requests[0]!.truncatedTokenKeyId;
  if (requests.some((r) => r.truncatedTokenKeyId !== truncatedId)) {
    throw new ApiError('mixed_keys', 'all token requests of one batch must use the same key (send one batch per key)');
  }
  return { shape, requests, truncatedId };
}

export function selectIssuingKey(keyring: Keyring, truncatedId: number, now: number, graceMs = 0): KeyEntry {
  const key = keyring.issuing(truncatedId, now, undefined, graceMs);
  if (!key) {
    throw new ApiError('unknown_key', `no key with truncated id ${truncatedId} issues tokens now; fetch the issuer directory for the current keys`);
  }
  return key;
}

const moduli = new WeakMap<KeyEntry, Uint8Array>();

function modulusOf(key: KeyEntry): Uint8Array {
  let n = moduli.get(key);
  if (!n) {
    n = new Uint8Array(Buffer.from(key.publicKey.export({ format: 'jwk' }).n!, 'base64url'));
    moduli.set(key, n);
  }
  return n;
}

/** A blinded message must be below the modulus (RFC 9474 RSASP1); caught here so the client is not debited for it. */
export function checkBlindedMessages(key: KeyEntry, requests: readonly TokenRequest[]): void {
  const n = modulusOf(key);
  requests.forEach((r, i) => {
    const m = r.blindedMsg;
    let cmp = 0;
    for (let j = 0; j < m.length && cmp === 0; j++) cmp = m[j]! - n[j]!;
    if (m.length !== n.length || cmp >= 0) {
      throw new ApiError('malformed_request', `token request ${i}: blinded_msg is not smaller than the key's modulus`, { details: { reason: 'message_out_of_range' } });
    }
  });
}

/** Binds an Idempotency-Key to exactly this request (media type and bytes). */
export function issuanceBodyHash(shape: IssuanceShape, body: Uint8Array): string {
  return createHash('sha256').update(shape).update('\n').update(body).digest('hex');
}

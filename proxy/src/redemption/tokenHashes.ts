/**
 * Everything derived from token bytes. Redis only ever sees these derivations:
 *
 * - spent-set id     = SHA-256(token)                         (public, one-way)
 * - pseudonym part   = SHA-256("llmtor-pseudonym-v1:" kind ":" token)
 * - request binding  = HMAC-SHA-256(K_bind, canonical request) with
 *   K_bind = HKDF(tokens, "request-binding"): without the tokens nobody can test a
 *   guessed prompt against the stored binding.
 * - retry-cache key  = HKDF(tokens, "retry-cache"): the cached answer is
 *   AES-256-GCM ciphertext that cannot be read at rest without the tokens.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hash, randomFillSync } from 'node:crypto';

/** One-shot SHA-256 (no Hash object per call); Node ≥ 20.12 has crypto.hash. */
const oneShot = typeof hash === 'function';

export function sha256Hex(data: Uint8Array | string): string {
  return oneShot ? hash('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex');
}

export function spentId(token: Uint8Array): string {
  return sha256Hex(token);
}

const PSEUDONYM_PREFIX = { permanent: Buffer.from('llmtor-pseudonym-v1:permanent:'), transient: Buffer.from('llmtor-pseudonym-v1:transient:') };

export function pseudonymPart(kind: 'permanent' | 'transient', token: Uint8Array): string {
  const prefix = PSEUDONYM_PREFIX[kind];
  if (!oneShot) return createHash('sha256').update(prefix).update(token).digest('hex');
  const buf = Buffer.allocUnsafe(prefix.length + token.length);
  prefix.copy(buf, 0);
  buf.set(token, prefix.length);
  return hash('sha256', buf, 'hex');
}

/**
 * Random GCM nonces, drawn from the CSPRNG in blocks (one randomFillSync per
 * 256 nonces instead of one per answer). Every nonce is handed out once.
 */
const IV_LEN = 12;
const IV_BLOCK = 256;
let ivPool = Buffer.alloc(0);
let ivNext = 0;
function freshIv(): Buffer {
  if (ivNext >= ivPool.length) {
    ivPool = randomFillSync(Buffer.allocUnsafe(IV_LEN * IV_BLOCK));
    ivNext = 0;
  }
  const iv = ivPool.subarray(ivNext, ivNext + IV_LEN);
  ivNext += IV_LEN;
  return iv;
}

const SALT = Buffer.from('llmtor-redemption-v1');
/** HKDF-Expand with L = 32: T(1) = HMAC(PRK, info | 0x01). */
const INFO_BIND = Buffer.from('llmtor request-binding\x01', 'latin1');
const INFO_CACHE = Buffer.from('llmtor retry-cache\x01', 'latin1');

/** Secrets derived from the (ordered) tokens of one request. */
export class TokenSecrets {
  private readonly bindKey: Buffer;
  private readonly cacheKey: Buffer;

  constructor(tokens: readonly Uint8Array[]) {
    const ikm = Buffer.concat(tokens.map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength)));
    // HKDF-SHA-256 (RFC 5869) written out with HMAC: node's hkdfSync costs ~10× more per call
    // (KeyObject set-up), and this runs on every request. One PRK, two 32-byte output blocks.
    const prk = createHmac('sha256', SALT).update(ikm).digest();
    this.bindKey = createHmac('sha256', prk).update(INFO_BIND).digest();
    this.cacheKey = createHmac('sha256', prk).update(INFO_CACHE).digest();
  }

  binding(canonicalRequest: string): string {
    return createHmac('sha256', this.bindKey).update(canonicalRequest).digest('hex');
  }

  /** iv(12) | tag(16) | ciphertext, with the binding as associated data. */
  seal(plaintext: Buffer, binding: string): Buffer {
    const iv = freshIv();
    const c = createCipheriv('aes-256-gcm', this.cacheKey, iv);
    c.setAAD(Buffer.from(binding));
    const ct = c.update(plaintext);
    const tail = c.final();
    const out = Buffer.allocUnsafe(IV_LEN + 16 + ct.length + tail.length);
    iv.copy(out, 0);
    c.getAuthTag().copy(out, IV_LEN);
    ct.copy(out, IV_LEN + 16);
    tail.copy(out, IV_LEN + 16 + ct.length);
    return out;
  }

  /** undefined if the blob does not decrypt (other tokens, other request, tampered). */
  open(blob: Buffer, binding: string): Buffer | undefined {
    if (blob.length < 28) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.cacheKey, blob.subarray(0, 12));
      d.setAAD(Buffer.from(binding));
      d.setAuthTag(blob.subarray(12, 28));
      return Buffer.concat([d.update(blob.subarray(28)), d.final()]);
    } catch {
      return undefined;
    }
  }
}

/**
 * Byte helpers. Decoders return `subarray` views into the input (no copies), so
 * a caller that keeps a decoded field must not mutate the input buffer.
 */
import { ProtocolError } from './errors.js';

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

const B64URL_RE = /^[A-Za-z0-9_-]*$/;
const B64URL_PADDED_RE = /^[A-Za-z0-9_-]*={0,2}$/;

/** base64url without padding (RFC 4648 §5): our JSON documents and the LLMTor-Abuse header. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * base64url with padding (RFC 4648 §5 alphabet, §3.2 padding), as RFC 9577
 * §2.1.2 and §2.2.2 require for the PrivateToken `challenge`, `token-key` and
 * `token` parameters and RFC 9578 §4 for the directory's `token-key`.
 */
export function toBase64UrlPadded(bytes: Uint8Array): string {
  const s = toBase64Url(bytes);
  return s + '='.repeat((4 - (s.length % 4)) % 4);
}

/**
 * Strict base64url decode, padded or not: rejects whitespace, the standard
 * alphabet's '+' '/', wrong padding and non-canonical encodings (a value has
 * exactly two spellings, with and without its padding).
 */
export function fromBase64Url(text: string, what = 'value'): Uint8Array {
  if (typeof text !== 'string' || !B64URL_PADDED_RE.test(text)) {
    throw new ProtocolError('malformed', `${what} is not valid base64url`);
  }
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const bare = pad === 0 ? text : text.slice(0, -pad);
  if (!B64URL_RE.test(bare) || bare.length % 4 === 1 || (pad > 0 && (text.length % 4 !== 0 || (4 - (bare.length % 4)) % 4 !== pad))) {
    throw new ProtocolError('malformed', `${what} is not valid base64url (bad length or padding)`);
  }
  const buf = Buffer.from(bare, 'base64url');
  // Reject non-canonical encodings (extra bits set in the last character).
  if (buf.toString('base64url') !== bare) {
    throw new ProtocolError('malformed', `${what} is not canonical base64url`);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(text: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) throw new ProtocolError('malformed', 'not a hex string');
  const buf = Buffer.from(text, 'hex');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function readU16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

export function writeU16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff;
  b[off + 1] = v & 0xff;
}

/**
 * QUIC variable-length integer (RFC 9000 §16) with the minimal-encoding rule the
 * batched-tokens draft adds. Returns [value, bytesRead].
 */
export function readVarint(b: Uint8Array, off: number): [number, number] {
  if (off >= b.length) throw new ProtocolError('malformed', 'truncated length prefix');
  const first = b[off]!;
  const prefix = first >>> 6;
  const len = 1 << prefix;
  if (off + len > b.length) throw new ProtocolError('malformed', 'truncated length prefix');
  let v = first & 0x3f;
  for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
  const minLen = varintLength(v);
  if (minLen !== len) throw new ProtocolError('malformed', 'length prefix is not minimally encoded');
  if (!Number.isSafeInteger(v)) throw new ProtocolError('malformed', 'length prefix too large');
  return [v, len];
}

export function varintLength(v: number): number {
  if (v < 0x40) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x40000000) return 4;
  return 8;
}

export function writeVarint(b: Uint8Array, off: number, v: number): number {
  const len = varintLength(v);
  let x = v;
  for (let i = len - 1; i >= 0; i--) {
    b[off + i] = x & 0xff;
    x = Math.floor(x / 256);
  }
  b[off] = b[off]! | ({ 1: 0, 2: 1, 4: 2, 8: 3 }[len as 1 | 2 | 4 | 8] << 6);
  return len;
}

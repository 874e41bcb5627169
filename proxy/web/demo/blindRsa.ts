/**
 * The client's RSA work for token type 0x0002 in a browser: RSABSSA-SHA384-PSS-
 * Deterministic Blind and Finalize (RFC 9474 §4.2, §4.4) in BigInt, SHA-384 and
 * the final RSASSA-PSS check (SHA-384, salt 48) with WebCrypto.
 *
 * protocol/src/nativeBlindCore.ts does the same in Node, but it is tied to
 * node:crypto (synchronous hashing, OpenSSL's public operation) so that it can
 * run as text in a worker thread; it cannot run here. This is the small,
 * readable version for the demo page: plain extended Euclid, e = 65537 by
 * square-and-multiply. The page shows the intermediate values on purpose.
 */

export interface RsaPublicKey {
  n: bigint;
  e: bigint;
  /** Modulus length in bytes (256 for type 0x0002). */
  modLen: number;
  modBits: number;
  /** For the final signature check. */
  verifyKey: CryptoKey;
}

export const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
export const toInt = (b: Uint8Array): bigint => (b.length === 0 ? 0n : BigInt(`0x${toHex(b)}`));
export function toBytes(x: bigint, len: number): Uint8Array {
  const hex = x.toString(16).padStart(len * 2, '0');
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
export function toBase64Url(b: Uint8Array, padded = false): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  const out = btoa(s).replace(/\+/g, '-').replace(/\//g, '_');
  return padded ? out : out.replace(/=+$/, '');
}
export function fromBase64Url(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '').padEnd(Math.ceil(s.replace(/=+$/, '').length / 4) * 4, '='));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
export const randomBytes = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));
// The casts: TypeScript's DOM types want ArrayBuffer-backed views; ours are.
export const sha256 = async (b: Uint8Array): Promise<Uint8Array> => new Uint8Array(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>));
const sha384 = async (...parts: Uint8Array[]): Promise<Uint8Array> => new Uint8Array(await crypto.subtle.digest('SHA-384', concat(...parts) as Uint8Array<ArrayBuffer>));

export function modPow(base: bigint, exp: bigint, n: bigint): bigint {
  let result = 1n;
  let b = base % n;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % n;
    b = (b * b) % n;
  }
  return result;
}

export function modInverse(a: bigint, n: bigint): bigint {
  let [r0, r1, s0, s1] = [n, ((a % n) + n) % n, 0n, 1n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error('not invertible modulo n');
  return ((s0 % n) + n) % n;
}

/** DER: the [tag, contents, next offset] at `off`. */
function derRead(b: Uint8Array, off: number): [number, Uint8Array, number] {
  const tag = b[off]!;
  let len = b[off + 1]!;
  let p = off + 2;
  if (len & 0x80) {
    const k = len & 0x7f;
    len = 0;
    for (let i = 0; i < k; i++) len = len * 256 + b[p++]!;
  }
  return [tag, b.subarray(p, p + len), p + len];
}

/**
 * The directory's token-key is an SPKI with the id-RSASSA-PSS algorithm
 * (RFC 9578 §6.5), which WebCrypto does not import: read n and e out of it
 * (SEQUENCE { algorithm, BIT STRING { RSAPublicKey } }) and import those.
 */
export async function importTokenKey(spki: Uint8Array): Promise<RsaPublicKey> {
  const [, outer] = derRead(spki, 0);
  const [, , afterAlg] = derRead(outer, 0);
  const [bitTag, bits] = derRead(outer, afterAlg);
  if (bitTag !== 0x03 || bits[0] !== 0) throw new Error('token-key: not an RSA SubjectPublicKeyInfo');
  const [, rsaKey] = derRead(bits.subarray(1), 0);
  const [, nBytes, afterN] = derRead(rsaKey, 0);
  const [, eBytes] = derRead(rsaKey, afterN);
  const n = toInt(nBytes);
  const e = toInt(eBytes);
  const modBits = n.toString(2).length;
  const modLen = Math.ceil(modBits / 8);
  const verifyKey = await crypto.subtle.importKey(
    'jwk',
    { kty: 'RSA', n: toBase64Url(toBytes(n, modLen)), e: toBase64Url(toBytes(e, Math.ceil(e.toString(16).length / 2))), ext: true },
    { name: 'RSA-PSS', hash: 'SHA-384' },
    false,
    ['verify'],
  );
  return { n, e, modLen, modBits, verifyKey };
}

/** EMSA-PSS-ENCODE (RFC 8017 §9.1.1), SHA-384, MGF1-SHA-384, salt 48 bytes. */
async function pssEncode(msg: Uint8Array, salt: Uint8Array, modBits: number): Promise<Uint8Array> {
  const hLen = 48;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const h = await sha384(new Uint8Array(8), await sha384(msg), salt);
  const dbLen = emLen - hLen - 1;
  const db = new Uint8Array(dbLen);
  db[dbLen - salt.length - 1] = 1;
  db.set(salt, dbLen - salt.length);
  for (let off = 0, c = 0; off < dbLen; off += hLen, c++) {
    const mask = await sha384(h, new Uint8Array([0, 0, (c >>> 8) & 0xff, c & 0xff]));
    for (let i = 0; i < hLen && off + i < dbLen; i++) db[off + i] = db[off + i]! ^ mask[i]!;
  }
  db[0] = db[0]! & (0xff >>> (8 * emLen - emBits));
  return concat(db, h, new Uint8Array([0xbc]));
}

export interface Blinded {
  blindedMsg: Uint8Array;
  /** The blinding factor r and its inverse: secrets of this browser; they unlink the token from the request. */
  r: bigint;
  inv: bigint;
}

/** RFC 9474 Blind: blinded_msg = encode(msg) · r^e mod n, r uniformly random in [1, n). */
export async function blind(key: RsaPublicKey, msg: Uint8Array): Promise<Blinded> {
  const m = toInt(await pssEncode(msg, randomBytes(48), key.modBits));
  const topMask = 0xff >>> (8 * key.modLen - key.modBits);
  for (;;) {
    const rb = randomBytes(key.modLen);
    rb[0] = rb[0]! & topMask;
    const r = toInt(rb);
    if (r === 0n || r >= key.n) continue;
    const inv = modInverse(r, key.n);
    return { blindedMsg: toBytes((m * modPow(r, key.e, key.n)) % key.n, key.modLen), r, inv };
  }
}

/** RFC 9474 Finalize: s = blind_sig · r^-1 mod n, then RSASSA-PSS-VERIFY with WebCrypto. */
export async function finalize(key: RsaPublicKey, msg: Uint8Array, blindSig: Uint8Array, inv: bigint): Promise<Uint8Array> {
  const z = toInt(blindSig);
  if (blindSig.length !== key.modLen || z >= key.n) throw new Error('blind_sig has the wrong length');
  const sig = toBytes((z * inv) % key.n, key.modLen);
  if (!(await verify(key, msg, sig))) throw new Error('the issuer returned a blind signature that does not finalize into a valid token');
  return sig;
}

export function verify(key: RsaPublicKey, msg: Uint8Array, sig: Uint8Array): Promise<boolean> {
  return crypto.subtle.verify({ name: 'RSA-PSS', saltLength: 48 }, key.verifyKey, sig as Uint8Array<ArrayBuffer>, msg as Uint8Array<ArrayBuffer>);
}

/**
 * What the issuer could try with its records: for its i-th signing (blinded_msg
 * b, blind_sig z) and a token's authenticator s, the blinding factor that would
 * explain the pair is r' = z · s^-1 mod n, and the pair is consistent when
 * r'^e · (s^e mod n) ≡ b. It is for every pair (z = b^d, s = m^d, so
 * r'^e = b / m): the issuer's records fit every matching equally.
 */
export function explainPair(key: RsaPublicKey, blindedMsg: Uint8Array, blindSig: Uint8Array, authenticator: Uint8Array): { r: bigint; consistent: boolean } {
  const s = toInt(authenticator);
  const r = (toInt(blindSig) * modInverse(s, key.n)) % key.n;
  const m = modPow(s, key.e, key.n);
  return { r, consistent: (modPow(r, key.e, key.n) * m) % key.n === toInt(blindedMsg) };
}

/**
 * RSABSSA-SHA384-PSS-Deterministic client operations (RFC 9474 §4.2 Blind,
 * §4.4 Finalize; RFC 9578 §6 uses it for type 0x0002) on native RSA and BigInt.
 *
 * The RSA public operation r^e mod n is OpenSSL's (`publicEncrypt` with no
 * padding), the check of the final signature is `crypto.verify` (PSS, SHA-384,
 * salt 48); what is left is EMSA-PSS encoding (two SHA-384 and MGF1) and a few
 * modular multiplications in BigInt.
 *
 * Secrets are the blinding factor r and its inverse. The inverse is the one
 * step with secret-dependent control flow (Euclid), so it is blinded: the
 * batch's product of all r (times the product of the messages, which also
 * checks they are coprime with n) is multiplied by a fresh random unit a, and
 * Euclid only ever sees that uniformly random value; a batch then needs one
 * inversion (Montgomery's trick). BigInt multiplication is not constant time
 * in V8 (its cost follows the operands' lengths, which for these uniformly
 * random values leaks next to nothing); this is "constant-time minded", not a
 * constant-time implementation.
 *
 * Both functions are self-contained (no imports, no outer helpers: node:crypto
 * comes from `process.getBuiltinModule`, Node >= 20.16) so that
 * `nativeBlind.ts` can run their source text in a worker thread without a
 * file of its own, also inside the extension's single-file bundle.
 */

import type * as nodeCryptoModule from 'node:crypto';

type NodeCrypto = typeof nodeCryptoModule;

export interface BlindCoreInput {
  /** PKCS#1 RSAPublicKey DER of the token key. */
  pkcs1: Uint8Array;
  /** The messages to blind (for tokens: the 98-byte token input; Deterministic: no prefix). */
  msgs: Uint8Array[];
  /** Test vectors only: fixed PSS salts (48 bytes each). */
  salts?: Uint8Array[];
  /** Test vectors only: fixed blinding factors r (modulus length, big-endian, 1 <= r < n). */
  rs?: Uint8Array[];
}

export interface BlindCoreOutput {
  blindedMsgs: Uint8Array[];
  /** r^-1 mod n per message, modulus length, big-endian (the same bytes blindrsa-ts keeps). */
  invs: Uint8Array[];
}

export function blindCore(input: BlindCoreInput): BlindCoreOutput {
  const nodeCrypto = (process as unknown as { getBuiltinModule(id: string): NodeCrypto }).getBuiltinModule('node:crypto');
  const key = nodeCrypto.createPublicKey({ key: Buffer.from(input.pkcs1), format: 'der', type: 'pkcs1' });
  const jwk = key.export({ format: 'jwk' });
  const nBytes = Buffer.from(jwk.n!, 'base64url');
  const n = BigInt('0x' + nBytes.toString('hex'));
  const modBits = n.toString(2).length;
  const modLen = Math.ceil(modBits / 8);
  const hLen = 48;
  const sLen = 48;
  const toInt = (b: Uint8Array): bigint => (b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')));
  const toBytes = (x: bigint, len: number): Uint8Array => new Uint8Array(Buffer.from(x.toString(16).padStart(len * 2, '0'), 'hex'));
  const sha384 = (...parts: Uint8Array[]): Buffer => {
    const h = nodeCrypto.createHash('sha384');
    for (const p of parts) h.update(p);
    return h.digest();
  };

  // EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-384, MGF1-SHA-384, sLen 48, emBits = modBits - 1.
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const pssEncode = (msg: Uint8Array, salt: Uint8Array): Uint8Array => {
    const mHash = sha384(msg);
    const h = sha384(new Uint8Array(8), mHash, salt);
    const dbLen = emLen - hLen - 1;
    const db = new Uint8Array(dbLen);
    db[dbLen - sLen - 1] = 1;
    db.set(salt, dbLen - sLen);
    const counter = new Uint8Array(4);
    for (let off = 0, c = 0; off < dbLen; off += hLen, c++) {
      counter[3] = c & 0xff;
      counter[2] = (c >>> 8) & 0xff;
      const mask = sha384(h, counter);
      for (let i = 0; i < hLen && off + i < dbLen; i++) db[off + i] = db[off + i]! ^ mask[i]!;
    }
    db[0] = db[0]! & (0xff >>> (8 * emLen - emBits));
    const em = new Uint8Array(emLen);
    em.set(db, 0);
    em.set(h, dbLen);
    em[emLen - 1] = 0xbc;
    return em;
  };

  // Uniform in [1, n): rejection sampling on modBits random bits.
  const topMask = 0xff >>> (8 * modLen - modBits);
  const randomUnit = (): bigint => {
    for (;;) {
      const b = nodeCrypto.randomBytes(modLen);
      b[0] = b[0]! & topMask;
      const x = toInt(b);
      if (x > 0n && x < n) return x;
    }
  };
  // Extended Euclid on a public (blinded) value, with Lehmer's speed-up (Knuth, TAOCP vol. 2,
  // §4.5.2, Algorithm L): quotients are found on the leading 52 bits in doubles, and the
  // BigInt pair is updated once per run of equal quotients instead of once per quotient.
  const modInverse = (val: bigint): bigint => {
    let [bigA, bigB, ua, ub] = [n, val % n, 0n, 1n]; // bigA = ua·val, bigB = ub·val (mod n)
    let bits = modBits;
    while (bigB !== 0n) {
      while (bits > 0 && bigA >> BigInt(bits - 1) === 0n) bits--;
      let [a, b, c, d] = [1, 0, 0, 1];
      if (bits > 52) {
        const shift = BigInt(bits - 52);
        let x = Number(bigA >> shift);
        let y = Number(bigB >> shift);
        while (y + c > 0 && y + d > 0) {
          const q = Math.floor((x + a) / (y + c));
          if (q !== Math.floor((x + b) / (y + d))) break;
          [a, c] = [c, a - q * c];
          [b, d] = [d, b - q * d];
          [x, y] = [y, x - q * y];
        }
      }
      if (b === 0) {
        const q = bigA / bigB;
        [bigA, bigB] = [bigB, bigA - q * bigB];
        [ua, ub] = [ub, ua - q * ub];
      } else {
        const [ba, bb, bc, bd] = [BigInt(a), BigInt(b), BigInt(c), BigInt(d)];
        [bigA, bigB] = [ba * bigA + bb * bigB, bc * bigA + bd * bigB];
        [ua, ub] = [ba * ua + bb * ub, bc * ua + bd * ub];
      }
    }
    if (bigA !== 1n) throw new Error('blinding: a value shares a factor with the modulus');
    ua %= n;
    return ua < 0n ? ua + n : ua;
  };

  const count = input.msgs.length;
  const ms: bigint[] = new Array(count);
  const rs: bigint[] = new Array(count);
  const blindedMsgs: Uint8Array[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const salt = input.salts?.[i] ?? nodeCrypto.randomBytes(sLen);
    if (salt.length !== sLen) throw new Error(`salt must be ${sLen} bytes`);
    const m = toInt(pssEncode(input.msgs[i]!, salt));
    const r = input.rs?.[i] ? toInt(input.rs[i]!) : randomUnit();
    if (r <= 0n || r >= n) throw new Error('r must be in [1, n)');
    // x = RSAVP1(pk, r) = r^e mod n, natively.
    const x = toInt(nodeCrypto.publicEncrypt({ key, padding: nodeCrypto.constants.RSA_NO_PADDING }, toBytes(r, modLen)));
    ms[i] = m;
    rs[i] = r;
    blindedMsgs[i] = toBytes((m * x) % n, modLen);
  }

  // One blinded inversion for the batch: prefix[i] = r_0 … r_i; the value inverted is
  // prefix[last] · (m_0 … m_last) · a, uniformly random whatever the r are.
  const prefix: bigint[] = new Array(count);
  let acc = 1n;
  let mProduct = 1n;
  for (let i = 0; i < count; i++) {
    acc = (acc * rs[i]!) % n;
    prefix[i] = acc;
    mProduct = (mProduct * ms[i]!) % n;
  }
  const a = randomUnit();
  const ma = (mProduct * a) % n;
  let inv = (modInverse((acc * ma) % n) * ma) % n; // (r_0 … r_last)^-1
  const invs: Uint8Array[] = new Array(count);
  for (let i = count - 1; i >= 0; i--) {
    const ri = i > 0 ? (inv * prefix[i - 1]!) % n : inv;
    invs[i] = toBytes(ri, modLen);
    inv = (inv * rs[i]!) % n;
  }
  return { blindedMsgs, invs };
}

export interface FinalizeCoreInput {
  pkcs1: Uint8Array;
  items: { msg: Uint8Array; blindSig: Uint8Array; inv: Uint8Array }[];
}

/**
 * RFC 9474 Finalize: s = blind_sig · inv mod n, then RSASSA-PSS-VERIFY (natively).
 * Returns the signature, or null where it does not verify.
 */
export function finalizeCore(input: FinalizeCoreInput): (Uint8Array | null)[] {
  const nodeCrypto = (process as unknown as { getBuiltinModule(id: string): NodeCrypto }).getBuiltinModule('node:crypto');
  const key = nodeCrypto.createPublicKey({ key: Buffer.from(input.pkcs1), format: 'der', type: 'pkcs1' });
  const n = BigInt('0x' + Buffer.from(key.export({ format: 'jwk' }).n!, 'base64url').toString('hex'));
  const modLen = Math.ceil(n.toString(2).length / 8);
  const toInt = (b: Uint8Array): bigint => (b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')));
  return input.items.map(({ msg, blindSig, inv }) => {
    if (blindSig.length !== modLen || inv.length !== modLen) return null;
    const z = toInt(blindSig);
    if (z >= n) return null;
    const sig = new Uint8Array(Buffer.from(((z * toInt(inv)) % n).toString(16).padStart(modLen * 2, '0'), 'hex'));
    const ok = nodeCrypto.verify('sha384', msg, { key, padding: nodeCrypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, sig);
    return ok ? sig : null;
  });
}

/**
 * token_key_id (RFC 9578 §6.5): SHA-256 over the DER SubjectPublicKeyInfo that
 * carries id-RSASSA-PSS with SHA-384 / MGF1-SHA-384 / salt 48 parameters. The
 * private operations use an ordinary `rsaEncryption` key object (a key typed
 * `rsa-pss` cannot do `privateDecrypt`), so we build that SPKI by hand.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { bytesEqual, concatBytes, fromHex } from './bytes.js';
import { NK } from './constants.js';
import { ProtocolError } from './errors.js';

// AlgorithmIdentifier { id-RSASSA-PSS, RSASSA-PSS-params { [0] sha384, [1] mgf1(sha384), [2] 48 } }
const PSS_ALGORITHM_IDENTIFIER = fromHex(
  '303d' +
    '06092a864886f70d01010a' + // 1.2.840.113549.1.1.10 id-RSASSA-PSS
    '3030' +
    'a00d300b0609608648016503040202' + // hashAlgorithm sha384
    'a11a301806092a864886f70d010108300b0609608648016503040202' + // maskGenAlgorithm mgf1 sha384
    'a203020130', // saltLength 48
);

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  if (n < 0x100) return Uint8Array.of(0x81, n);
  return Uint8Array.of(0x82, n >> 8, n & 0xff);
}

function readDerLength(b: Uint8Array, off: number): [number, number] {
  const first = b[off];
  if (first === undefined) throw new ProtocolError('malformed', 'truncated DER');
  if (first < 0x80) return [first, 1];
  const n = first & 0x7f;
  if (n < 1 || n > 2 || off + n >= b.length) throw new ProtocolError('malformed', 'unsupported DER length');
  let v = 0;
  for (let i = 1; i <= n; i++) v = (v << 8) | b[off + i]!;
  return [v, 1 + n];
}

/** The subjectPublicKey BIT STRING contents of any SPKI. */
function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  if (spki[0] !== 0x30) throw new ProtocolError('malformed', 'not a DER SubjectPublicKeyInfo');
  const [, ol] = readDerLength(spki, 1);
  let off = 1 + ol;
  if (spki[off] !== 0x30) throw new ProtocolError('malformed', 'SPKI: expected AlgorithmIdentifier');
  const [algLen, al] = readDerLength(spki, off + 1);
  off += 1 + al + algLen;
  if (spki[off] !== 0x03) throw new ProtocolError('malformed', 'SPKI: expected BIT STRING');
  const [bsLen, bl] = readDerLength(spki, off + 1);
  off += 1 + bl;
  return spki.subarray(off + 1, off + bsLen);
}

/** The RSASSA-PSS SPKI (DER) for an RSA public key, as used for token_key_id and the directory. */
export function pssSpkiFromPublicKey(key: KeyObject): Uint8Array {
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') {
    throw new ProtocolError('unsupported_key', `key type ${key.asymmetricKeyType} is not RSA`);
  }
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  // PKCS#1 RSAPublicKey bytes, whatever the key's algorithm identifier (rsaEncryption or rsa-pss).
  const pkcs1 = key.asymmetricKeyType === 'rsa' ? new Uint8Array(pub.export({ type: 'pkcs1', format: 'der' })) : subjectPublicKeyBits(new Uint8Array(pub.export({ type: 'spki', format: 'der' })));
  const bitString = concatBytes([Uint8Array.of(0x03), derLength(pkcs1.length + 1), Uint8Array.of(0x00), pkcs1]);
  const body = concatBytes([PSS_ALGORITHM_IDENTIFIER, bitString]);
  return concatBytes([Uint8Array.of(0x30), derLength(body.length), body]);
}

/**
 * Parses an RSASSA-PSS SPKI (exact SHA-384/MGF1/48 parameters) into an ordinary
 * `rsaEncryption` public KeyObject usable with `crypto.verify` and `publicEncrypt`.
 */
export function publicKeyFromPssSpki(spki: Uint8Array, expectedModulusBytes: number = NK): KeyObject {
  if (!(spki instanceof Uint8Array) || spki.length < 4 || spki[0] !== 0x30) {
    throw new ProtocolError('malformed', 'token key is not a DER SubjectPublicKeyInfo');
  }
  const [outerLen, ol] = readDerLength(spki, 1);
  if (1 + ol + outerLen !== spki.length) throw new ProtocolError('malformed', 'token key DER length mismatch');
  let off = 1 + ol;
  const alg = spki.subarray(off, off + PSS_ALGORITHM_IDENTIFIER.length);
  if (!bytesEqual(alg, PSS_ALGORITHM_IDENTIFIER)) {
    throw new ProtocolError('unsupported_key', 'token key is not RSASSA-PSS with SHA-384/MGF1-SHA-384/salt 48');
  }
  off += PSS_ALGORITHM_IDENTIFIER.length;
  if (spki[off] !== 0x03) throw new ProtocolError('malformed', 'token key: expected BIT STRING');
  const [bsLen, bl] = readDerLength(spki, off + 1);
  off += 1 + bl;
  if (off + bsLen !== spki.length || spki[off] !== 0x00) throw new ProtocolError('malformed', 'token key: bad BIT STRING');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki.subarray(off + 1, off + bsLen)), format: 'der', type: 'pkcs1' });
  } catch {
    throw new ProtocolError('malformed', 'token key: RSAPublicKey does not parse');
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (Math.ceil(bits / 8) !== expectedModulusBytes) {
    throw new ProtocolError('unsupported_key', `token key modulus is ${bits} bits, expected ${expectedModulusBytes * 8}`);
  }
  return key;
}

/** token_key_id = SHA-256(RSASSA-PSS SPKI). */
export function tokenKeyId(spkiOrKey: Uint8Array | KeyObject): Uint8Array {
  const spki = spkiOrKey instanceof Uint8Array ? spkiOrKey : pssSpkiFromPublicKey(spkiOrKey);
  return new Uint8Array(createHash('sha256').update(spki).digest());
}

/** The truncated key id carried in a TokenRequest: the last byte of token_key_id. */
export function truncatedKeyId(keyId: Uint8Array): number {
  return keyId[keyId.length - 1]!;
}

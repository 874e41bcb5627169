/**
 * Native blind signer (server side). The raw RSA private operation runs in
 * OpenSSL (`privateDecrypt` with RSA_NO_PADDING on a cached KeyObject: CRT,
 * RSA blinding, constant time), never in JavaScript big numbers. Every signature
 * is checked with the public key before it leaves (RFC 9474 §4.3): a CRT fault
 * would otherwise hand out a value that factors the modulus.
 */
import { constants, createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import { bytesEqual } from './bytes.js';
import { NK } from './constants.js';
import { ProtocolError } from './errors.js';
import { tokenKeyId } from './keyId.js';

export class BlindSigner {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: Uint8Array;
  readonly modulusBytes: number;
  private readonly modulus: Uint8Array;

  constructor(privateKey: KeyObject | Uint8Array, opts: { modulusBytes?: number } = {}) {
    let key: KeyObject;
    try {
      key = privateKey instanceof Uint8Array ? createPrivateKey({ key: Buffer.from(privateKey), format: 'der', type: 'pkcs8' }) : privateKey;
    } catch {
      throw new ProtocolError('malformed', 'signing key is not a PKCS#8 DER private key');
    }
    if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') {
      throw new ProtocolError('unsupported_key', 'signing key must be an rsaEncryption private key (not rsa-pss: it cannot do the raw operation)');
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    this.modulusBytes = Math.ceil(bits / 8);
    const expected = opts.modulusBytes ?? NK;
    if (this.modulusBytes !== expected) {
      throw new ProtocolError('unsupported_key', `signing key is ${bits} bits, expected ${expected * 8}`);
    }
    this.privateKey = key;
    this.publicKey = createPublicKey(key);
    const n = Buffer.from(this.publicKey.export({ format: 'jwk' }).n!, 'base64url');
    this.modulus = new Uint8Array(this.modulusBytes);
    this.modulus.set(n, this.modulusBytes - n.length);
    this.keyId = tokenKeyId(this.publicKey);
  }

  /** blind_sig = RSASP1(sk, blinded_msg), checked with RSAVP1 before returning. */
  sign(blindedMsg: Uint8Array): Uint8Array {
    if (!(blindedMsg instanceof Uint8Array) || blindedMsg.length !== this.modulusBytes) {
      throw new ProtocolError('wrong_length', `blinded_msg must be ${this.modulusBytes} bytes, got ${blindedMsg instanceof Uint8Array ? blindedMsg.length : typeof blindedMsg}`);
    }
    if (compareBigEndian(blindedMsg, this.modulus) >= 0) {
      throw new ProtocolError('message_out_of_range', 'blinded_msg is not smaller than the modulus');
    }
    let sig: Buffer;
    try {
      sig = privateDecrypt({ key: this.privateKey, padding: constants.RSA_NO_PADDING }, blindedMsg);
    } catch {
      throw new ProtocolError('signing_failure', 'RSA private operation failed');
    }
    let check: Buffer;
    try {
      check = publicEncrypt({ key: this.publicKey, padding: constants.RSA_NO_PADDING }, sig);
    } catch {
      throw new ProtocolError('signing_failure', 'blind signature self-check failed');
    }
    if (!bytesEqual(check, blindedMsg)) {
      sig.fill(0);
      throw new ProtocolError('signing_failure', 'blind signature self-check failed');
    }
    return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
  }
}

/** Not constant time; only used on public values (the modulus and a client's blinded message). */
function compareBigEndian(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  }
  return 0;
}

/**
 * Typed protocol errors. Every decoder and crypto check in this package throws
 * only `ProtocolError` (never a bare Error or a RangeError from a Buffer read),
 * so callers can map `code` to an HTTP status without guessing.
 */
export type ProtocolErrorCode =
  | 'wrong_length' // a fixed-size field or message has the wrong number of bytes
  | 'wrong_token_type' // token_type is not 0x0002
  | 'malformed' // structure cannot be parsed (bad varint, bad presence octet, trailing bytes, bad JSON…)
  | 'unknown_key_id' // no live key has that (truncated) key id
  | 'bad_signature' // the authenticator does not verify
  | 'message_out_of_range' // blinded message is >= the modulus
  | 'signing_failure' // the signer's self-check failed (possible fault): nothing is returned
  | 'challenge_mismatch' // the token was made for another TokenChallenge
  | 'unsupported_key' // a key that is not RSA-2048 / not the RSASSA-PSS SPKI we expect
  | 'decryption_failure'; // an envelope-encrypted signing key could not be opened

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

export function isProtocolError(e: unknown): e is ProtocolError {
  return e instanceof ProtocolError;
}

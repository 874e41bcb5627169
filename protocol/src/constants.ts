/** Token type 0x0002: Blind RSA (2048-bit), RSABSSA-SHA384-PSS-Deterministic (RFC 9578 §6). */
export const TOKEN_TYPE_BLIND_RSA = 0x0002;
/** Nk: modulus length in bytes for type 0x0002. */
export const NK = 256;
/** Nid: length of token_key_id. */
export const NID = 32;
export const NONCE_LENGTH = 32;
export const CHALLENGE_DIGEST_LENGTH = 32;
/** token_type(2) | nonce(32) | challenge_digest(32) | token_key_id(32) — the signed token input. */
export const TOKEN_INPUT_LENGTH = 2 + NONCE_LENGTH + CHALLENGE_DIGEST_LENGTH + NID;
export const TOKEN_LENGTH = TOKEN_INPUT_LENGTH + NK; // 354
export const TOKEN_REQUEST_LENGTH = 2 + 1 + NK; // 259
export const TOKEN_RESPONSE_LENGTH = NK; // 256
/** PSS salt length for SHA-384 (RFC 9474 RSABSSA-SHA384-PSS-*). Node must be told it explicitly. */
export const PSS_SALT_LENGTH = 48;

export const MEDIA_TYPE_TOKEN_REQUEST = 'application/private-token-request';
export const MEDIA_TYPE_TOKEN_RESPONSE = 'application/private-token-response';
export const MEDIA_TYPE_BATCH_REQUEST = 'application/private-token-generic-batch-request';
export const MEDIA_TYPE_BATCH_RESPONSE = 'application/private-token-generic-batch-response';
export const MEDIA_TYPE_ISSUER_DIRECTORY = 'application/private-token-issuer-directory';
export const ISSUER_DIRECTORY_PATH = '/.well-known/private-token-issuer-directory';

/** Server-only parts (native signer and its worker pool). */
export { BlindSigner } from './signer.js';
export { SignerPool } from './signerPool.js';
export { generateSigningKey } from './keygen.js';

/**
 * The wire formats without Node built-ins, for browser bundles (the `/demo`
 * page): Token, TokenRequest/TokenResponse, the generic batch, constants and
 * errors. Nothing here hashes, signs or encodes base64 (those use node:crypto
 * or Buffer); a browser does that with WebCrypto.
 */
export * from './batch.js';
export * from './constants.js';
export * from './errors.js';
export * from './token.js';
export * from './tokenRequest.js';

/**
 * Client side of issuance (used by the VS Code extension): token input with a
 * fresh random nonce, blinding and finalization with @cloudflare/blindrsa-ts
 * (RSABSSA-SHA384-PSS-Deterministic). The state between blind and finalize is
 * plain bytes so a wallet can persist it.
 */
import { RSABSSA } from '@cloudflare/blindrsa-ts';
import { randomBytes, webcrypto } from 'node:crypto';
import { fromBase64Url, toBase64Url } from './bytes.js';
import { NK, TOKEN_TYPE_BLIND_RSA } from './constants.js';
import { challengeDigest, type TokenChallenge } from './challenge.js';
import { ProtocolError } from './errors.js';
import { publicKeyFromPssSpki, tokenKeyId, truncatedKeyId } from './keyId.js';
import { decodeTokenInput, encodeToken, encodeTokenInput } from './token.js';
import type { TokenRequest, TokenResponse } from './tokenRequest.js';

const suite = RSABSSA.SHA384.PSS.Deterministic();
type SuiteKey = Parameters<typeof suite.blind>[0];

/** What the client keeps between sending a TokenRequest and receiving its TokenResponse. */
export interface PendingToken {
  /** base64url token input (type | nonce | challenge_digest | token_key_id). */
  tokenInput: string;
  /** base64url blinding inverse. Secret: it unlinks the token from the request. */
  inv: string;
}

export class TokenClient {
  readonly keyId: Uint8Array;
  readonly spki: Uint8Array;
  private readonly cryptoKey: webcrypto.CryptoKey;

  private constructor(spki: Uint8Array, cryptoKey: webcrypto.CryptoKey) {
    this.spki = spki;
    this.keyId = tokenKeyId(spki);
    this.cryptoKey = cryptoKey;
  }

  /** From the directory's token-key (RSASSA-PSS SPKI, DER or base64url). */
  static async forKey(spki: Uint8Array | string): Promise<TokenClient> {
    const der = typeof spki === 'string' ? fromBase64Url(spki, 'token-key') : spki;
    const jwk = publicKeyFromPssSpki(der).export({ format: 'jwk' });
    const key = await webcrypto.subtle.importKey('jwk', { kty: 'RSA', n: jwk.n, e: jwk.e, ext: true }, { name: 'RSA-PSS', hash: 'SHA-384' }, true, ['verify']);
    return new TokenClient(der, key);
  }

  /**
   * `challenge` is a TokenChallenge or its 32-byte digest. `opts.nonce` exists
   * for test vectors only: a real client must use a fresh random nonce.
   */
  async createRequest(challenge: TokenChallenge | Uint8Array, opts: { nonce?: Uint8Array } = {}): Promise<{ request: TokenRequest; pending: PendingToken }> {
    const digest = challenge instanceof Uint8Array ? challenge : challengeDigest(challenge);
    const nonce = opts.nonce ?? new Uint8Array(randomBytes(32));
    const tokenInput = encodeTokenInput({ tokenType: TOKEN_TYPE_BLIND_RSA, nonce, challengeDigest: digest, tokenKeyId: this.keyId });
    const prepared = suite.prepare(tokenInput);
    const { blindedMsg, inv } = await suite.blind(this.cryptoKey as unknown as SuiteKey, prepared);
    return {
      request: { tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: truncatedKeyId(this.keyId), blindedMsg },
      pending: { tokenInput: toBase64Url(prepared), inv: toBase64Url(inv) },
    };
  }

  /** Unblinds and checks the signature (blindrsa-ts verifies before returning). Returns the encoded 354-byte token. */
  async finalize(pending: PendingToken, response: TokenResponse): Promise<Uint8Array> {
    if (response.blindSig.length !== NK) throw new ProtocolError('wrong_length', `blind_sig must be ${NK} bytes`);
    const input = fromBase64Url(pending.tokenInput, 'tokenInput');
    let authenticator: Uint8Array;
    try {
      authenticator = await suite.finalize(this.cryptoKey as unknown as SuiteKey, input, response.blindSig, fromBase64Url(pending.inv, 'inv'));
    } catch {
      throw new ProtocolError('bad_signature', 'issuer returned a blind signature that does not finalize into a valid token');
    }
    return encodeToken({ ...decodeTokenInput(input), authenticator });
  }
}

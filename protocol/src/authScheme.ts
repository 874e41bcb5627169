/**
 * The PrivateToken HTTP authentication scheme (RFC 9577 §2).
 *
 * Redemption of k credits: the Authorization header carries k credentials,
 * comma-separated: `PrivateToken token=<b64url>, PrivateToken token=<b64url>`.
 * A 401 carries `WWW-Authenticate: PrivateToken challenge=<b64url>, token-key=<b64url>[, max-age=N]`.
 */
import { parseAuthItems } from './authParams.js';
import { fromBase64Url, readU16, toBase64UrlPadded } from './bytes.js';
import { TOKEN_TYPE_BLIND_RSA } from './constants.js';
import { ProtocolError } from './errors.js';

export interface PrivateTokenChallengeHeader {
  challenge: Uint8Array;
  /** Absent where the origin leaves the key to the issuer directory (RFC 9577 §2.1.2: MAY be omitted). */
  tokenKey?: Uint8Array;
  maxAge?: number;
}

export function formatAuthorization(tokens: readonly Uint8Array[]): string {
  return tokens.map((t) => `PrivateToken token="${toBase64UrlPadded(t)}"`).join(', ');
}

/**
 * Parses every `PrivateToken` credential in an Authorization header value
 * (RFC 9110 §11.6.2 grammar through `parseAuthItems`). Returns [] if the scheme
 * is absent; other schemes and unknown parameters are ignored (RFC 9577
 * §2.2.2). `maxTokens` bounds the work.
 */
export function parseAuthorization(header: string | undefined, maxTokens = 64): Uint8Array[] {
  if (header === undefined || header.trim() === '') return [];
  if (header.length > maxTokens * 520 + 64) throw new ProtocolError('malformed', `Authorization header too long (at most ${maxTokens} tokens)`);
  const out: Uint8Array[] = [];
  for (const item of parseAuthItems(header)) {
    if (item.scheme.toLowerCase() !== 'privatetoken') continue;
    const token = item.params.get('token');
    if (token === undefined) throw new ProtocolError('malformed', 'PrivateToken credential is not of the form token=<base64url>');
    if (out.length >= maxTokens) throw new ProtocolError('malformed', `too many tokens (at most ${maxTokens})`);
    out.push(fromBase64Url(token, 'token'));
  }
  return out;
}

export function formatWwwAuthenticate(c: PrivateTokenChallengeHeader): string {
  // Padded, as RFC 9577 §2.1.2 requires, hence quoted-strings (RFC 9110 §11.2: "=" is not a token character).
  let s = `PrivateToken challenge="${toBase64UrlPadded(c.challenge)}"`;
  if (c.tokenKey) s += `, token-key="${toBase64UrlPadded(c.tokenKey)}"`;
  if (c.maxAge !== undefined) s += `, max-age=${c.maxAge}`;
  return s;
}

/**
 * Parses the first PrivateToken challenge for token type 0x0002 in a
 * WWW-Authenticate value: an RFC 9110 §11.6.1 list of challenges, where other
 * schemes (`Basic realm="a,b"`), other token types (grease, RFC 9577 §7.3 and
 * Appendix A.2) and unknown parameters (§2.1.2) are skipped.
 */
export function parseWwwAuthenticate(header: string): PrivateTokenChallengeHeader {
  let found = false;
  for (const item of parseAuthItems(header)) {
    if (item.scheme.toLowerCase() !== 'privatetoken') continue;
    found = true;
    const challenge = item.params.get('challenge');
    const tokenKey = item.params.get('token-key');
    if (!challenge) throw new ProtocolError('malformed', 'PrivateToken challenge needs challenge=');
    const challengeBytes = fromBase64Url(challenge, 'challenge');
    if (challengeBytes.length < 2 || readU16(challengeBytes, 0) !== TOKEN_TYPE_BLIND_RSA) continue;
    const out: PrivateTokenChallengeHeader = { challenge: challengeBytes };
    if (tokenKey !== undefined) out.tokenKey = fromBase64Url(tokenKey, 'token-key');
    const maxAge = item.params.get('max-age');
    if (maxAge !== undefined && /^\d+$/.test(maxAge)) out.maxAge = Number(maxAge);
    return out;
  }
  throw new ProtocolError('malformed', found ? 'no PrivateToken challenge for token type 0x0002' : 'no PrivateToken challenge');
}

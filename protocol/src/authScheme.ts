/**
 * The PrivateToken HTTP authentication scheme (RFC 9577 §2).
 *
 * Redemption of k credits: one credential (RFC 9110 §11.6.2 allows one per
 * Authorization field) whose standard `token` parameter holds the first token
 * and whose extension parameter `additional-tokens` (a quoted-string: a comma-
 * separated list of padded base64url tokens) the other k − 1:
 *   `PrivateToken token="<t1>", additional-tokens="<t2>,<t3>"`
 * A plain RFC 9577 verifier ignores the extension (§2.2.2) and reads one token.
 * The pre-2026-12 form, k credentials in one field line
 * (`PrivateToken token=<t1>, PrivateToken token=<t2>`), is still read for one
 * release (deprecated). Rationale: docs/api-redemption.md.
 * A 401 carries `WWW-Authenticate: PrivateToken challenge="<b64url>", token-key="<b64url>"[, max-age=N]`.
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

/** Name of the LLM-Tor extension parameter that carries tokens 2..k of one request. */
export const ADDITIONAL_TOKENS_PARAM = 'additional-tokens';

export function formatAuthorization(tokens: readonly Uint8Array[]): string {
  if (tokens.length === 0) throw new ProtocolError('malformed', 'an Authorization credential needs at least one token');
  let s = `PrivateToken token="${toBase64UrlPadded(tokens[0]!)}"`;
  if (tokens.length > 1) s += `, ${ADDITIONAL_TOKENS_PARAM}="${tokens.slice(1).map(toBase64UrlPadded).join(',')}"`;
  return s;
}

/** How an Authorization value carried its tokens: one credential, or the deprecated k credentials. */
export type AuthorizationForm = 'none' | 'single-credential' | 'legacy-multiple-credentials';

/**
 * Parses the PrivateToken credential(s) of an Authorization value (RFC 9110
 * §11.6.2 grammar through `parseAuthItems`): `token` plus the extension
 * `additional-tokens`; other schemes and unknown parameters are ignored (RFC
 * 9577 §2.2.2). Several PrivateToken credentials in one value are the
 * deprecated form; mixing both forms is refused. `maxTokens` bounds the work.
 */
export function parseAuthorizationForm(header: string | undefined, maxTokens = 64): { tokens: Uint8Array[]; form: AuthorizationForm } {
  if (header === undefined || header.trim() === '') return { tokens: [], form: 'none' };
  if (header.length > maxTokens * 520 + 64) throw new ProtocolError('malformed', `Authorization header too long (at most ${maxTokens} tokens)`);
  const out: Uint8Array[] = [];
  const push = (text: string) => {
    if (out.length >= maxTokens) throw new ProtocolError('malformed', `too many tokens (at most ${maxTokens})`);
    out.push(fromBase64Url(text, 'token'));
  };
  let credentials = 0;
  let additional = false;
  for (const item of parseAuthItems(header)) {
    if (item.scheme.toLowerCase() !== 'privatetoken') continue;
    credentials++;
    const token = item.params.get('token');
    if (token === undefined) throw new ProtocolError('malformed', 'PrivateToken credential is not of the form token=<base64url>');
    push(token);
    const more = item.params.get(ADDITIONAL_TOKENS_PARAM);
    if (more !== undefined) {
      additional = true;
      for (const t of more.split(',')) push(t.trim());
    }
  }
  if (credentials > 1 && additional) throw new ProtocolError('malformed', `send one PrivateToken credential with ${ADDITIONAL_TOKENS_PARAM}, not several credentials`);
  return { tokens: out, form: credentials === 0 ? 'none' : credentials === 1 ? 'single-credential' : 'legacy-multiple-credentials' };
}

/** The tokens of `parseAuthorizationForm`. */
export function parseAuthorization(header: string | undefined, maxTokens = 64): Uint8Array[] {
  return parseAuthorizationForm(header, maxTokens).tokens;
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

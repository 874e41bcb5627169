/**
 * The PrivateToken HTTP authentication scheme (RFC 9577 §2).
 *
 * Redemption of k credits: the Authorization header carries k credentials,
 * comma-separated: `PrivateToken token=<b64url>, PrivateToken token=<b64url>`.
 * A 401 carries `WWW-Authenticate: PrivateToken challenge=<b64url>, token-key=<b64url>[, max-age=N]`.
 */
import { fromBase64Url, toBase64UrlPadded } from './bytes.js';
import { ProtocolError } from './errors.js';

export interface PrivateTokenChallengeHeader {
  challenge: Uint8Array;
  tokenKey: Uint8Array;
  maxAge?: number;
}

export function formatAuthorization(tokens: readonly Uint8Array[]): string {
  return tokens.map((t) => `PrivateToken token="${toBase64UrlPadded(t)}"`).join(', ');
}

/**
 * Parses every `PrivateToken token=…` credential in an Authorization header
 * value. Returns [] if the scheme is absent. `maxTokens` bounds the work.
 */
export function parseAuthorization(header: string | undefined, maxTokens = 64): Uint8Array[] {
  if (header === undefined || header.trim() === '') return [];
  if (header.length > maxTokens * 520 + 64) throw new ProtocolError('malformed', `Authorization header too long (at most ${maxTokens} tokens)`);
  const out: Uint8Array[] = [];
  // Split on commas that start a new credential; auth-params of one credential are also comma-separated.
  const parts = header.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  let inPrivateToken = false;
  for (const part of parts) {
    let param = part;
    const m = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s+(.*)$/.exec(part);
    if (m && !m[1]!.includes('=')) {
      inPrivateToken = m[1]!.toLowerCase() === 'privatetoken';
      param = m[2]!;
    } else if (/^[A-Za-z]+$/.test(part)) {
      inPrivateToken = part.toLowerCase() === 'privatetoken';
      continue;
    }
    if (!inPrivateToken) continue;
    const pm = /^([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^\s"]*))$/.exec(param);
    if (!pm) throw new ProtocolError('malformed', 'PrivateToken credential is not of the form token=<base64url>');
    if (pm[1]!.toLowerCase() !== 'token') continue;
    if (out.length >= maxTokens) throw new ProtocolError('malformed', `too many tokens (at most ${maxTokens})`);
    out.push(fromBase64Url(pm[2] ?? pm[3] ?? '', 'token'));
  }
  return out;
}

export function formatWwwAuthenticate(c: PrivateTokenChallengeHeader): string {
  // Padded, as RFC 9577 §2.1.2 requires, hence quoted-strings (RFC 9110 §11.2: "=" is not a token character).
  let s = `PrivateToken challenge="${toBase64UrlPadded(c.challenge)}", token-key="${toBase64UrlPadded(c.tokenKey)}"`;
  if (c.maxAge !== undefined) s += `, max-age=${c.maxAge}`;
  return s;
}

/** Parses the first PrivateToken challenge in a WWW-Authenticate value. */
export function parseWwwAuthenticate(header: string): PrivateTokenChallengeHeader {
  const idx = header.search(/PrivateToken\s/i);
  if (idx < 0) throw new ProtocolError('malformed', 'no PrivateToken challenge');
  const rest = header.slice(idx + 'PrivateToken'.length);
  const params = new Map<string, string>();
  for (const m of rest.matchAll(/\s*([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^\s,"]*))\s*,?/g)) {
    const k = m[1]!.toLowerCase();
    if (!params.has(k)) params.set(k, m[2] ?? m[3] ?? '');
  }
  const challenge = params.get('challenge');
  const tokenKey = params.get('token-key');
  if (!challenge || !tokenKey) throw new ProtocolError('malformed', 'PrivateToken challenge needs challenge= and token-key=');
  const out: PrivateTokenChallengeHeader = { challenge: fromBase64Url(challenge, 'challenge'), tokenKey: fromBase64Url(tokenKey, 'token-key') };
  const maxAge = params.get('max-age');
  if (maxAge !== undefined && /^\d+$/.test(maxAge)) out.maxAge = Number(maxAge);
  return out;
}

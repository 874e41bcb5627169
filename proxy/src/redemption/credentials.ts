/**
 * Token checks on the redemption path (CPU only, native RSA verify):
 * credit tokens from `Authorization: PrivateToken token=…[, additional-tokens="…,…"]`
 * and the two abuse tokens from `LLMTor-Abuse: permanent=<b64url>, transient=<b64url>`.
 */
import {
  challengeDigest,
  defaultChallenge,
  encodeTokenChallenge,
  formatWwwAuthenticate,
  fromBase64Url,
  isProtocolError,
  parseAuthorization,
  parseAuthParamList,
  verifyToken,
  type KeyPurpose,
  type Keyring,
} from '@llmtor/protocol';
import { NO_RETRY, RedemptionError } from './errors.js';
import { pseudonymPart, sha256Hex, spentId } from './tokenHashes.js';

export const ABUSE_HEADER = 'llmtor-abuse';

export interface VerifiedToken {
  bytes: Uint8Array;
  spentId: string;
  /** When the token's key stops being redeemable: the spent-set entry may expire then. */
  redemptionEnd: number;
}

export interface Pseudonym {
  permanent: string;
  transient: string;
  /** Redemption ends of the two keys (a blacklist entry for the transient part need not outlive its key). */
  transientRedemptionEnd: number;
}

/** Challenge material computed once per issuer name. */
export class ChallengeContext {
  readonly digest: Uint8Array;
  private readonly encoded: Uint8Array;
  constructor(issuerName: string) {
    const c = defaultChallenge(issuerName);
    this.encoded = encodeTokenChallenge(c);
    this.digest = challengeDigest(this.encoded);
  }

  /**
   * `WWW-Authenticate` with the newest credit key. When no credit key issues
   * now, the challenge goes without `token-key`, which RFC 9577 §2.1.2 allows
   * where clients learn keys out of band (the issuer directory).
   */
  wwwAuthenticate(keyring: Keyring, now: number): string {
    const key = keyring.currentIssuing('credit', now);
    return formatWwwAuthenticate({ challenge: this.encoded, ...(key ? { tokenKey: fromBase64Url(key.meta.publicKey, 'publicKey') } : {}) });
  }
}

/**
 * Parses Authorization into raw token bytes; malformed → 401 with a reason
 * (never the header). `header` is every Authorization field line received
 * (`headersDistinct`): HTTP allows one (RFC 9110 §5.3, §11.6.2), and Node
 * would silently keep only the first, so several are refused.
 */
export function parseCreditTokens(header: string | readonly string[] | undefined, maxTokens: number): Uint8Array[] {
  if (Array.isArray(header) && header.length > 1) {
    throw new RedemptionError('invalid_request', 'send one Authorization field: k tokens go in one credential, PrivateToken token="<t1>", additional-tokens="<t2>,…"');
  }
  const value = typeof header === 'string' ? header : header?.[0];
  try {
    return parseAuthorization(value || undefined, maxTokens);
  } catch (e) {
    throw new RedemptionError('invalid_token', isProtocolError(e) ? `Authorization: ${e.message}` : 'Authorization header is malformed');
  }
}

function verifyOne(bytes: Uint8Array, keyring: Keyring, now: number, digest: Uint8Array, purpose: KeyPurpose, what: string): { redemptionEnd: number } {
  let end = 0;
  try {
    verifyToken(
      bytes,
      (keyId) => {
        const e = keyring.redeeming(keyId, now);
        if (!e || e.meta.purpose !== purpose) return undefined;
        end = e.redemptionEnd;
        return e.publicKey;
      },
      digest,
    );
  } catch (e) {
    const reason = isProtocolError(e) ? e.code : 'malformed';
    const hint: Record<string, string> = {
      unknown_key_id: `was not issued under a ${purpose} key that is redeemable now (unknown, expired or wrong purpose)`,
      bad_signature: 'has an invalid signature',
      challenge_mismatch: 'was made for another issuer or challenge',
      wrong_token_type: 'is not token type 0x0002',
      wrong_length: 'has the wrong length (a type 0x0002 token is 354 bytes)',
    };
    throw new RedemptionError('invalid_token', `${what} ${hint[reason] ?? 'is malformed'}`, { extra: { reason } });
  }
  return { redemptionEnd: end };
}

export function verifyCreditTokens(tokens: readonly Uint8Array[], keyring: Keyring, now: number, digest: Uint8Array): VerifiedToken[] {
  const seen = new Set<string>();
  return tokens.map((bytes, i) => {
    const { redemptionEnd } = verifyOne(bytes, keyring, now, digest, 'credit', `credit token #${i + 1}`);
    const id = spentId(bytes);
    if (seen.has(id)) throw new RedemptionError('duplicate_token', `credit token #${i + 1} appears twice in this request`);
    seen.add(id);
    return { bytes, spentId: id, redemptionEnd };
  });
}

/**
 * `permanent=<b64url>, transient=<b64url>`: an RFC 9110 auth-param list (order
 * free, each name once, values token or quoted-string, base64url padded or
 * not; unknown parameters ignored), read by the same parser as Authorization.
 */
export function parseAbuseHeader(value: string | undefined): { permanent: Uint8Array; transient: Uint8Array } | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  if (value.length > 2048) throw new RedemptionError('invalid_abuse_tokens', 'LLMTor-Abuse header is too long');
  let params: Map<string, string>;
  try {
    params = parseAuthParamList(value);
  } catch (e) {
    throw new RedemptionError('invalid_abuse_tokens', `LLMTor-Abuse must be "permanent=<base64url>, transient=<base64url>"${isProtocolError(e) ? ` (${e.message})` : ''}`);
  }
  const out: { permanent?: Uint8Array; transient?: Uint8Array } = {};
  for (const kind of ['permanent', 'transient'] as const) {
    const v = params.get(kind);
    if (v === undefined) continue;
    try {
      out[kind] = fromBase64Url(v, kind);
    } catch {
      throw new RedemptionError('invalid_abuse_tokens', `LLMTor-Abuse ${kind} token is not canonical base64url`);
    }
  }
  if (!out.permanent || !out.transient) throw new RedemptionError('invalid_abuse_tokens', 'LLMTor-Abuse needs both permanent= and transient=');
  return { permanent: out.permanent, transient: out.transient };
}

/** A parsed LLMTor-Abuse header: its tokens, or (seen before) the pseudonym parts it verified to. */
export interface AbuseHeader {
  value: string;
  id?: string;
  tokens?: { permanent: Uint8Array; transient: Uint8Array };
  known?: { permanent: string; transient: string };
}

/**
 * Abuse tokens come back on every request of a pseudonym, so their signature
 * checks are remembered (in memory only, bounded): keyed by the token's hash,
 * valid while the same key is still redeemable. Credit tokens are never
 * cached: each is seen once.
 */
export class AbuseTokenCache {
  private readonly map = new Map<string, { keyId: Uint8Array; publicKey: unknown; redemptionEnd: number }>();
  /** SHA-256 of an LLMTor-Abuse header value whose two tokens verified → their pseudonym parts (keys of `map`). */
  private readonly headers = new Map<string, { permanent: string; transient: string }>();
  constructor(private readonly max = 10_000) {}

  /**
   * `parseAbuseHeader`, except that a header value seen (and verified) before is
   * recognised by its hash and not parsed again: the same pseudonym sends the
   * same header on every request. Errors are those of `parseAbuseHeader`.
   */
  parseHeader(value: string | undefined): AbuseHeader | undefined {
    if (value === undefined || value.trim() === '') return undefined;
    if (this.max > 0 && value.length <= 2048) {
      const id = sha256Hex(value);
      const known = this.headers.get(id);
      if (known) return { value, id, known };
      return { value, id, tokens: parseAbuseHeader(value) };
    }
    return { value, tokens: parseAbuseHeader(value) };
  }

  /** `verifyAbuseTokens` for a parsed header; a known one only has its two keys re-checked against the keyring. */
  verifyHeader(h: AbuseHeader, keyring: Keyring, now: number, digest: Uint8Array): Pseudonym {
    if (h.known) {
      const p = this.recheck(h.known.permanent, 'permanent', keyring, now);
      const t = p === undefined ? undefined : this.recheck(h.known.transient, 'transient', keyring, now);
      if (t !== undefined) return { permanent: h.known.permanent, transient: h.known.transient, transientRedemptionEnd: t };
    }
    const pseudonym = verifyAbuseTokens(h.tokens ?? parseAbuseHeader(h.value)!, keyring, now, digest, this);
    if (h.id !== undefined && this.max > 0) {
      if (this.headers.size >= this.max) this.headers.delete(this.headers.keys().next().value!);
      this.headers.set(h.id, { permanent: pseudonym.permanent, transient: pseudonym.transient });
    }
    return pseudonym;
  }

  /** Redemption end of a cached token's key if that key is still redeemable for `kind` (same key object); else undefined. */
  private recheck(hash: string, kind: 'permanent' | 'transient', keyring: Keyring, now: number): number | undefined {
    const hit = this.map.get(hash);
    if (!hit) return undefined;
    const e = keyring.redeeming(hit.keyId, now);
    return e && e.publicKey === hit.publicKey && e.meta.purpose === kind ? e.redemptionEnd : undefined;
  }

  verify(kind: 'permanent' | 'transient', bytes: Uint8Array, keyring: Keyring, now: number, digest: Uint8Array): { hash: string; redemptionEnd: number } {
    const hash = pseudonymPart(kind, bytes);
    const hit = this.map.get(hash);
    if (hit) {
      const e = keyring.redeeming(hit.keyId, now);
      if (e && e.publicKey === hit.publicKey && e.meta.purpose === kind) return { hash, redemptionEnd: e.redemptionEnd };
      this.map.delete(hash);
    }
    const { redemptionEnd } = verifyOne(bytes, keyring, now, digest, kind, `${kind} abuse token`);
    if (this.max === 0) return { hash, redemptionEnd };
    const keyId = bytes.slice(66, 98);
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(hash, { keyId, publicKey: keyring.redeeming(keyId, now)?.publicKey, redemptionEnd });
    return { hash, redemptionEnd };
  }
}

/** Verifies both abuse tokens (presented, never spent) and returns the pseudonym. */
export function verifyAbuseTokens(
  tokens: { permanent: Uint8Array; transient: Uint8Array },
  keyring: Keyring,
  now: number,
  digest: Uint8Array,
  cache: AbuseTokenCache = new AbuseTokenCache(0),
): Pseudonym {
  const p = cache.verify('permanent', tokens.permanent, keyring, now, digest);
  const t = cache.verify('transient', tokens.transient, keyring, now, digest);
  return { permanent: p.hash, transient: t.hash, transientRedemptionEnd: t.redemptionEnd };
}

/** What a request presents, parsed from its two headers (before the body is read: the count sets the body limit). */
export interface PresentedCredentials {
  tokens: Uint8Array[];
  abuse?: AbuseHeader;
}

/** The credentials a request proved: its credit tokens (with spent ids) and, with abuse tokens, its pseudonym. */
export interface VerifiedCredentials {
  tokens: VerifiedToken[];
  pseudonym?: Pseudonym;
}

/** Parses Authorization and LLMTor-Abuse once per request; errors as `parseCreditTokens` and `AbuseTokenCache.parseHeader`. */
export function readCredentials(authorization: string | readonly string[] | undefined, abuseHeader: string | undefined, maxTokens: number, cache: AbuseTokenCache): PresentedCredentials {
  const tokens = parseCreditTokens(authorization, maxTokens);
  const abuse = cache.parseHeader(abuseHeader);
  return abuse ? { tokens, abuse } : { tokens };
}

/** What verifying a request's credentials needs besides the credentials. */
export interface VerifyOptions {
  keyring: Keyring;
  now: number;
  challenge: ChallengeContext;
  abuseCache: AbuseTokenCache;
  /** Refuse a request without abuse tokens (config `abuseTokens: required`). */
  abuseRequired: boolean;
}

/**
 * Verifies the credit tokens, then the abuse tokens (credit-token errors first). A credit token
 * that does not verify is a 401 with the challenge and no retry: the same tokens fail again.
 */
export function verifyCredentials(presented: PresentedCredentials, o: VerifyOptions): VerifiedCredentials {
  let tokens: VerifiedToken[];
  try {
    tokens = verifyCreditTokens(presented.tokens, o.keyring, o.now, o.challenge.digest);
  } catch (e) {
    if (e instanceof RedemptionError && e.status === 401) {
      throw new RedemptionError(e.code, e.message, { headers: { 'www-authenticate': o.challenge.wwwAuthenticate(o.keyring, o.now), ...NO_RETRY }, extra: e.extra });
    }
    throw e;
  }
  if (presented.abuse) return { tokens, pseudonym: o.abuseCache.verifyHeader(presented.abuse, o.keyring, o.now, o.challenge.digest) };
  if (o.abuseRequired) {
    throw new RedemptionError('abuse_tokens_required', 'every request carries the two abuse tokens: LLMTor-Abuse: permanent=<base64url>, transient=<base64url>', { headers: NO_RETRY });
  }
  return { tokens };
}

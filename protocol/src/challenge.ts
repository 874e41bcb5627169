/** TokenChallenge (RFC 9577 §2.1) and its digest. */
import { createHash } from 'node:crypto';
import { readU16, writeU16 } from './bytes.js';
import { TOKEN_TYPE_BLIND_RSA } from './constants.js';
import { ProtocolError } from './errors.js';

/**
 * RFC 9577 §2.1:
 *
 *   struct {
 *       uint16_t token_type;
 *       opaque issuer_name<1..2^16-1>;
 *       opaque redemption_context<0..32>;
 *       opaque origin_info<0..2^16-1>;
 *   } TokenChallenge;
 */
export interface TokenChallenge {
  tokenType: number;
  /** ASCII issuer name (RFC 9577: opaque issuer_name<1..2^16-1>). */
  issuerName: Uint8Array;
  /** Empty, or exactly 32 bytes. */
  redemptionContext: Uint8Array;
  /** Empty, or one or more origin names separated by ','. */
  originInfo: Uint8Array;
}

const enc = new TextEncoder();

/**
 * The challenge LLM-Tor tokens are made for. Tokens are prefetched long before
 * they are used, so the challenge cannot carry a per-request context: it names
 * the issuer only (no redemption context, no origin), which RFC 9577 §2.1.1 calls a
 * cross-origin, context-free challenge.
 */
export function defaultChallenge(issuerName: string): TokenChallenge {
  return {
    tokenType: TOKEN_TYPE_BLIND_RSA,
    issuerName: enc.encode(issuerName),
    redemptionContext: new Uint8Array(0),
    originInfo: new Uint8Array(0),
  };
}

export function encodeTokenChallenge(c: TokenChallenge): Uint8Array {
  if (c.issuerName.length < 1 || c.issuerName.length > 0xffff) {
    throw new ProtocolError('wrong_length', 'issuer_name must be 1..65535 bytes');
  }
  if (c.redemptionContext.length !== 0 && c.redemptionContext.length !== 32) {
    throw new ProtocolError('wrong_length', 'redemption_context must be empty or 32 bytes');
  }
  if (c.originInfo.length > 0xffff) throw new ProtocolError('wrong_length', 'origin_info too long');
  const out = new Uint8Array(2 + 2 + c.issuerName.length + 1 + c.redemptionContext.length + 2 + c.originInfo.length);
  let off = 0;
  writeU16(out, off, c.tokenType);
  off += 2;
  writeU16(out, off, c.issuerName.length);
  off += 2;
  out.set(c.issuerName, off);
  off += c.issuerName.length;
  out[off++] = c.redemptionContext.length;
  out.set(c.redemptionContext, off);
  off += c.redemptionContext.length;
  writeU16(out, off, c.originInfo.length);
  off += 2;
  out.set(c.originInfo, off);
  return out;
}

export function decodeTokenChallenge(b: Uint8Array): TokenChallenge {
  const need = (off: number, n: number) => {
    if (off + n > b.length) throw new ProtocolError('malformed', 'TokenChallenge is truncated');
  };
  let off = 0;
  need(off, 2);
  const tokenType = readU16(b, off);
  off += 2;
  need(off, 2);
  const nameLen = readU16(b, off);
  off += 2;
  if (nameLen < 1) throw new ProtocolError('malformed', 'TokenChallenge issuer_name is empty');
  need(off, nameLen);
  const issuerName = b.subarray(off, off + nameLen);
  off += nameLen;
  need(off, 1);
  const ctxLen = b[off++]!;
  if (ctxLen !== 0 && ctxLen !== 32) {
    throw new ProtocolError('malformed', 'TokenChallenge redemption_context must be empty or 32 bytes');
  }
  need(off, ctxLen);
  const redemptionContext = b.subarray(off, off + ctxLen);
  off += ctxLen;
  need(off, 2);
  const originLen = readU16(b, off);
  off += 2;
  need(off, originLen);
  const originInfo = b.subarray(off, off + originLen);
  off += originLen;
  if (off !== b.length) throw new ProtocolError('malformed', 'TokenChallenge has trailing bytes');
  return { tokenType, issuerName, redemptionContext, originInfo };
}

/**
 * The one challenge a client makes tokens for (credit and both abuse tokens): derived by the
 * client itself, never learned from the server. `issuerName` comes from the client's
 * configuration or from the "issuer-name" of the directory it fetched anonymously at a
 * pinned URL. Anything the server chooses per client (a redemption context, origin info, a
 * different name) would tag that client's tokens, so it is not an input here.
 */
export function pinnedChallenge(issuerName: string): TokenChallenge {
  const name = issuerName.trim();
  if (!isIssuerName(name)) throw new ProtocolError('malformed', 'issuer name must be 1..255 printable ASCII characters without spaces or commas');
  return defaultChallenge(name);
}

/** An issuer name a client accepts: printable ASCII, no space or comma (RFC 9577 names a host). */
export function isIssuerName(v: unknown): v is string {
  return typeof v === 'string' && /^[\x21-\x2b\x2d-\x7e]{1,255}$/.test(v);
}

/**
 * Why an offered TokenChallenge (e.g. from a 401's WWW-Authenticate) differs from the pinned
 * one, or undefined if it is byte-for-byte the pinned one. A client refuses to make or spend
 * tokens for any other challenge.
 */
export function challengeDeviation(offered: Uint8Array, issuerName: string): string | undefined {
  const pinned = encodeTokenChallenge(pinnedChallenge(issuerName));
  if (offered.length === pinned.length && offered.every((b, i) => b === pinned[i])) return undefined;
  let c: TokenChallenge;
  try {
    c = decodeTokenChallenge(offered);
  } catch (e) {
    return `it is not a valid TokenChallenge (${(e as Error).message})`;
  }
  const why: string[] = [];
  if (c.tokenType !== TOKEN_TYPE_BLIND_RSA) why.push(`token type 0x${c.tokenType.toString(16).padStart(4, '0')} instead of 0x0002`);
  const name = new TextDecoder().decode(c.issuerName);
  if (name !== issuerName.trim()) why.push(`issuer name ${JSON.stringify(name)} instead of ${JSON.stringify(issuerName.trim())}`);
  if (c.redemptionContext.length > 0) why.push('a per-request redemption context');
  if (c.originInfo.length > 0) why.push('origin info');
  return why.length > 0 ? why.join(', ') : 'it differs from the pinned challenge';
}

/** challenge_digest = SHA-256(TokenChallenge). */
export function challengeDigest(challenge: TokenChallenge | Uint8Array): Uint8Array {
  const bytes = challenge instanceof Uint8Array ? challenge : encodeTokenChallenge(challenge);
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

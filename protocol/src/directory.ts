/**
 * Issuer directory (RFC 9578 §4) at /.well-known/private-token-issuer-directory.
 *
 * Standard fields: "issuer-request-uri", "token-keys" [{ "token-type",
 * "token-key" (base64url RSASSA-PSS SPKI), "not-before" }]. LLM-Tor adds, per
 * key and beside the standard ones: "purpose" (credit | permanent | transient),
 * "epoch" ("YYYY-MM", transient keys), "issuance-not-after" and
 * "redemption-not-after" (Unix seconds); and at the top level "issuer-name", the issuer
 * name of the TokenChallenge clients make tokens for (see `pinnedChallenge`). Parsing ignores unknown fields and
 * skips keys of token types it does not know, so newer issuers stay readable.
 */
import { fromBase64Url } from './bytes.js';

import { TOKEN_TYPE_BLIND_RSA } from './constants.js';
import { isIssuerName } from './challenge.js';
import { ProtocolError } from './errors.js';
import { isEpoch, isKeyPurpose, type KeyPurpose } from './keyPurpose.js';

/**
 * The most keys of one purpose (credit, permanent, transient) a directory lists at once —
 * one bound for the issuer and its clients (docs/protocol.md "Key bound"). Each key is a
 * set users could be sorted into. The operator's schedule stays within 5 (CRD rules bound
 * the windows against the rotation period), refuses an ordinary rotation request that would
 * bring a purpose above MAX - 2 and an emergency one above MAX; the extension refuses a
 * directory above it. Issuance is narrower still: a client uses only THE current key.
 */
export const MAX_KEYS_PER_PURPOSE = 8;

/** Why a directory breaks the per-purpose bound, or undefined. Keys without a purpose count as credit keys. */
export function directoryBoundViolation(dir: IssuerDirectory): string | undefined {
  const counts: Record<KeyPurpose, number> = { credit: 0, permanent: 0, transient: 0 };
  for (const k of dir['token-keys']) counts[k.purpose ?? 'credit']++;
  for (const p of Object.keys(counts) as KeyPurpose[]) {
    if (counts[p] > MAX_KEYS_PER_PURPOSE) return `the directory lists ${counts[p]} ${p} keys; at most ${MAX_KEYS_PER_PURPOSE} are allowed`;
  }
  return undefined;
}

export interface DirectoryKey {
  'token-type': number;
  'token-key': string;
  'not-before'?: number;
  purpose?: KeyPurpose;
  epoch?: string;
  'issuance-not-after'?: number;
  'redemption-not-after'?: number;
}

export interface IssuerDirectory {
  'issuer-request-uri': string;
  /** LLM-Tor: the issuer name of the TokenChallenge (clients pin it). */
  'issuer-name'?: string;
  'token-keys': DirectoryKey[];
}

function isUnixSeconds(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Validates a directory document (a parsed JSON value or its text). */
export function parseIssuerDirectory(input: unknown): IssuerDirectory {
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input);
    } catch {
      throw new ProtocolError('malformed', 'issuer directory is not JSON');
    }
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ProtocolError('malformed', 'issuer directory must be a JSON object');
  const o = doc as Record<string, unknown>;
  const uri = o['issuer-request-uri'];
  if (typeof uri !== 'string' || uri.length === 0) throw new ProtocolError('malformed', 'issuer directory: "issuer-request-uri" must be a non-empty string');
  const keys = o['token-keys'];
  if (!Array.isArray(keys)) throw new ProtocolError('malformed', 'issuer directory: "token-keys" must be an array');
  const out: DirectoryKey[] = [];
  keys.forEach((k: unknown, i) => {
    if (typeof k !== 'object' || k === null) throw new ProtocolError('malformed', `issuer directory: token-keys[${i}] must be an object`);
    const e = k as Record<string, unknown>;
    const type = e['token-type'];
    if (typeof type !== 'number' || !Number.isInteger(type)) throw new ProtocolError('malformed', `issuer directory: token-keys[${i}]["token-type"] must be an integer`);
    if (type !== TOKEN_TYPE_BLIND_RSA) return; // a type we do not know: skip, do not fail
    const tokenKey = e['token-key'];
    if (typeof tokenKey !== 'string') throw new ProtocolError('malformed', `issuer directory: token-keys[${i}]["token-key"] must be a string`);
    fromBase64Url(tokenKey, `token-keys[${i}]["token-key"]`);
    const key: DirectoryKey = { 'token-type': type, 'token-key': tokenKey };
    for (const f of ['not-before', 'issuance-not-after', 'redemption-not-after'] as const) {
      if (e[f] === undefined) continue;
      if (!isUnixSeconds(e[f])) throw new ProtocolError('malformed', `issuer directory: token-keys[${i}]["${f}"] must be Unix seconds`);
      key[f] = e[f];
    }
    if (e.purpose !== undefined) {
      if (!isKeyPurpose(e.purpose)) throw new ProtocolError('malformed', `issuer directory: token-keys[${i}].purpose must be credit, permanent or transient`);
      key.purpose = e.purpose;
    }
    if (e.epoch !== undefined) {
      if (!isEpoch(e.epoch)) throw new ProtocolError('malformed', `issuer directory: token-keys[${i}].epoch must be YYYY-MM`);
      key.epoch = e.epoch;
    }
    out.push(key);
  });
  const dir: IssuerDirectory = { 'issuer-request-uri': uri, 'token-keys': out };
  const name = o['issuer-name'];
  if (name !== undefined) {
    if (!isIssuerName(name)) throw new ProtocolError('malformed', 'issuer directory: "issuer-name" must be 1..255 printable ASCII characters without spaces or commas');
    dir['issuer-name'] = name;
  }
  return dir;
}

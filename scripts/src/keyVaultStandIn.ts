/**
 * A local HTTPS stand-in for Azure Key Vault (keys only), for driving the real
 * `@azure/keyvault-keys` SDK in tests.
 *
 * It follows the published Key Vault REST API (data plane, "keys" operations) and the
 * behaviour the SDK relies on:
 *
 * - Challenge-based auth: a request without `Authorization` gets 401 with
 *   `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
 *   resource="https://vault.azure.net"`; the SDK then asks its credential for a token for
 *   `https://vault.azure.net/.default` (tenant from the challenge) and retries. Every
 *   request must carry a bearer token this stand-in issued (through {@link
 *   KeyVaultStandIn.credential}) or accepted ({@link KeyVaultStandIn.acceptToken}), not
 *   expired and not revoked; anything else is 401 with the same challenge.
 * - HTTPS only, with a CA generated at start (openssl CLI); give {@link
 *   KeyVaultStandIn.caPem} to the SDK through `tlsOptions: { ca }` (see {@link
 *   KeyVaultStandIn.clientOptions}); nothing is trusted process-wide.
 * - Real RSA keys (node:crypto), real RSA-OAEP-256 / RSA-OAEP wrap, unwrap, encrypt,
 *   decrypt. Old versions keep working after a rotation.
 * - Errors in Key Vault's shape `{"error":{"code","message"}}` with the service's
 *   statuses: 400 BadParameter, 401 Unauthorized, 403 Forbidden (disabled key, operation
 *   not in key_ops), 404 KeyNotFound, 409 Conflict (name of a deleted key), 503
 *   ServiceUnavailable (fault injection).
 *
 * Routes (all need `api-version`):
 *   POST   /keys/{name}/create                 create (or add a version)
 *   PUT    /keys/{name}                        import (JWK with private parts)
 *   GET    /keys/{name}[/]                     latest version
 *   GET    /keys/{name}/{version}              one version
 *   PATCH  /keys/{name}[/{version}]            update attributes / key_ops / tags
 *   GET    /keys/{name}/versions               list versions (paged, maxresults)
 *   GET    /keys                               list keys (paged, maxresults)
 *   POST   /keys/{name}/rotate                 new version with the same kty/size/ops
 *   POST   /keys/{name}/{version}/wrapkey|unwrapkey|encrypt|decrypt   {alg, value}
 *   DELETE /keys/{name}                        soft delete
 *   GET    /deletedkeys/{name}                 deleted key
 *   DELETE /deletedkeys/{name}                 purge
 *   POST   /deletedkeys/{name}/recover         recover
 *
 * Not modelled: EC / oct / HSM-only features, sign/verify, backup/restore, release,
 * rotation policies, RSA1_5 unwrap (Node 20 refuses PKCS#1 v1.5 decryption).
 */
import {
  constants as cryptoConstants,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  randomUUID,
  type KeyObject,
} from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki } from './testPki.js';


/** The token audience Key Vault announces in its challenge. */
export const KEY_VAULT_RESOURCE = 'https://vault.azure.net';
export const KEY_VAULT_SCOPE = `${KEY_VAULT_RESOURCE}/.default`;

/** Fault modes for failure tests. `false` = healthy. */
export type UnreachableMode =
  | false
  /** stop listening: new connections get ECONNREFUSED; open connections are closed. */
  | 'refuse'
  /** answer every request with 503 ServiceUnavailable (Key Vault error JSON). */
  | '503'
  /** accept and read requests but never answer (client time-outs). */
  | 'hang'
  /** accept, then reset the connection (ECONNRESET / socket hang up). */
  | 'reset';

export type KeyVaultOperation =
  | 'create'
  | 'import'
  | 'get'
  | 'update'
  | 'listVersions'
  | 'list'
  | 'rotate'
  | 'wrapKey'
  | 'unwrapKey'
  | 'encrypt'
  | 'decrypt'
  | 'delete'
  | 'getDeleted'
  | 'purge'
  | 'recover'
  | 'unknown';

export interface RequestLogEntry {
  method: string;
  /** path without the query string */
  path: string;
  operation: KeyVaultOperation;
  apiVersion: string | null;
  /** whether a valid bearer token was presented */
  authorized: boolean;
  status: number;
  /** Key Vault error code when status >= 400 */
  errorCode?: string;
}

export interface KeyVaultStats {
  /** requests that reached the HTTP handler (including 401s and fault answers) */
  total: number;
  /** successful (2xx) calls per operation */
  ok: Partial<Record<KeyVaultOperation, number>>;
  /** all calls per operation that passed authentication, whatever the outcome */
  byOperation: Partial<Record<KeyVaultOperation, number>>;
  /** 401 answers (challenge or bad token) */
  unauthorized: number;
  /** requests answered by a fault mode (503) or dropped by 'hang' / 'reset' */
  faulted: number;
  /** tokens handed out by {@link KeyVaultStandIn.credential} */
  tokensIssued: number;
  /** connections refused are not counted: nothing reaches the process */
}

/** Structurally the `TokenCredential` of `@azure/core-auth`. */
export interface StandInCredential {
  getToken(
    scopes: string | string[],
    options?: { tenantId?: string; claims?: string; abortSignal?: unknown },
  ): Promise<{ token: string; expiresOnTimestamp: number; tokenType?: 'Bearer' } | null>;
  /** every getToken call: scopes and tenant requested */
  readonly calls: { scopes: string[]; tenantId: string | undefined; claims: string | undefined }[];
}

export interface KeyVaultStandInOptions {
  /** tenant announced in the challenge; default a random UUID */
  tenantId?: string;
  /** host name used in `vaultUrl` and key ids: '127.0.0.1' (default) or 'localhost' */
  host?: '127.0.0.1' | 'localhost';
  /** port to listen on, default a free one */
  port?: number;
  /** lifetime of issued tokens in seconds, default 3600 */
  tokenLifetimeSeconds?: number;
  /** `x-ms-keyvault-service-version` header value */
  serviceVersion?: string;
}

export interface KeyVaultStandIn {
  /** e.g. `https://127.0.0.1:43123` (no trailing slash), pass to `new KeyClient(vaultUrl, …)` */
  readonly vaultUrl: string;
  readonly port: number;
  readonly tenantId: string;
  /** PEM of the CA that signed the server certificate */
  readonly caPem: string;
  /** A TokenCredential that gets tokens this vault accepts (checks scope and tenant). */
  readonly credential: StandInCredential;
  /**
   * Options for `KeyClient` / `CryptographyClient`: trust the test CA (`tlsOptions.ca`),
   * accept the non-Azure challenge resource, and no retries (fast failure tests).
   */
  clientOptions(): {
    tlsOptions: { ca: string };
    disableChallengeResourceVerification: true;
    retryOptions: { maxRetries: number };
  };
  /** Make a bearer token valid (for credentials other than {@link credential}). */
  acceptToken(token: string, expiresOnTimestamp?: number): void;
  /**
   * Revoke every token issued so far. A revoked token gets 401 with a CAE claims challenge
   * (`error="insufficient_claims"`), as Key Vault answers under Continuous Access
   * Evaluation; the SDK then asks its credential again (with `claims`) and retries.
   */
  revokeAllTokens(): void;
  /** Fault injection; resolves once the mode is in force. */
  setUnreachable(mode: UnreachableMode): Promise<void>;
  readonly unreachable: UnreachableMode;
  stats(): KeyVaultStats;
  /** every request seen, oldest first */
  readonly requests: readonly RequestLogEntry[];
  resetStats(): void;
  /** Versions of a key, oldest first ([] if unknown); for assertions. */
  versionsOf(name: string): string[];
  close(): Promise<void>;
}

// ----------------------------------------------------------------------------- model

const RSA_KEY_OPS = ['encrypt', 'decrypt', 'sign', 'verify', 'wrapKey', 'unwrapKey'] as const;
const ALL_KEY_OPS = new Set<string>([...RSA_KEY_OPS, 'import', 'export']);
const NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;
const RECOVERABLE_DAYS = 90;

interface KeyAttributes {
  enabled: boolean;
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
  exportable: boolean;
}

interface KeyVersion {
  version: string;
  kty: 'RSA' | 'RSA-HSM';
  keySize: number;
  publicExponent: number;
  privateKey: KeyObject;
  publicKey: KeyObject;
  n: string;
  e: string;
  keyOps: string[];
  attributes: KeyAttributes;
  tags?: Record<string, string>;
}

interface KeyEntry {
  name: string;
  versions: KeyVersion[];
  deleted?: { deletedDate: number; scheduledPurgeDate: number };
}

class KvError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const b64url = (buf: Buffer): string => buf.toString('base64url');

function decodeB64url(value: unknown, field: string): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]*={0,2}$/.test(value)) {
    throw new KvError(400, 'BadParameter', `Property '${field}' must be a base64url encoded string.`);
  }
  return Buffer.from(value, 'base64url');
}

function keyNotFound(name: string, version?: string): KvError {
  const id = version ? `${name}/${version}` : name;
  return new KvError(
    404,
    'KeyNotFound',
    `A key with (name/id) ${id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
  );
}

// ----------------------------------------------------------------------------- TLS

// ----------------------------------------------------------------------------- server

export async function startKeyVaultStandIn(opts: KeyVaultStandInOptions = {}): Promise<KeyVaultStandIn> {
  const tenantId = opts.tenantId ?? randomUUID();
  const host = opts.host ?? '127.0.0.1';
  const tokenLifetime = opts.tokenLifetimeSeconds ?? 3600;
  const serviceVersion = opts.serviceVersion ?? '1.9.0.0';
  const challenge = `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="${KEY_VAULT_RESOURCE}"`;

  const dir = await mkdtemp(join(tmpdir(), 'llmtor-kv-'));
  let tls: { caPem: string; cert: string; key: string };
  try {
    const pki = await makeTestPki(dir, { caName: 'LLM-Tor Key Vault stand-in test CA', serverName: 'localhost', altNames: ['DNS:localhost', 'IP:127.0.0.1'], days: 2 });
    tls = { caPem: pki.caPem, cert: await readFile(pki.certFile, 'utf8'), key: await readFile(pki.keyFile, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const keys = new Map<string, KeyEntry>();
  const tokens = new Map<string, number>(); // token -> expiresOnTimestamp (ms)
  const revoked = new Set<string>();
  const requests: RequestLogEntry[] = [];
  let stats = emptyStats();
  let mode: UnreachableMode = false;
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let vaultUrl = '';

  function emptyStats(): KeyVaultStats {
    return { total: 0, ok: {}, byOperation: {}, unauthorized: 0, faulted: 0, tokensIssued: 0 };
  }

  const kidOf = (name: string, version?: string) =>
    version ? `${vaultUrl}/keys/${name}/${version}` : `${vaultUrl}/keys/${name}`;

  function attributesJson(a: KeyAttributes) {
    return {
      enabled: a.enabled,
      ...(a.nbf !== undefined ? { nbf: a.nbf } : {}),
      ...(a.exp !== undefined ? { exp: a.exp } : {}),
      created: a.created,
      updated: a.updated,
      recoveryLevel: 'Recoverable+Purgeable',
      recoverableDays: RECOVERABLE_DAYS,
      exportable: a.exportable,
    };
  }

  function bundle(name: string, v: KeyVersion) {
    return {
      key: { kid: kidOf(name, v.version), kty: v.kty, key_ops: [...v.keyOps], n: v.n, e: v.e },
      attributes: attributesJson(v.attributes),
      ...(v.tags ? { tags: { ...v.tags } } : {}),
    };
  }

  function deletedBundle(entry: KeyEntry) {
    const latest = entry.versions[entry.versions.length - 1]!;
    return {
      recoveryId: `${vaultUrl}/deletedkeys/${entry.name}`,
      deletedDate: entry.deleted!.deletedDate,
      scheduledPurgeDate: entry.deleted!.scheduledPurgeDate,
      ...bundle(entry.name, latest),
    };
  }

  function liveEntry(name: string): KeyEntry {
    const entry = keys.get(name);
    if (!entry || entry.deleted) throw keyNotFound(name);
    return entry;
  }

  function findVersion(name: string, version: string): KeyVersion {
    const entry = liveEntry(name);
    if (version === '') return entry.versions[entry.versions.length - 1]!;
    const v = entry.versions.find((x) => x.version === version);
    if (!v) throw keyNotFound(name, version);
    return v;
  }

  function parseAttributes(raw: unknown): Partial<KeyAttributes> {
    if (raw === undefined || raw === null) return {};
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new KvError(400, 'BadParameter', "Property 'attributes' must be an object.");
    }
    const r = raw as Record<string, unknown>;
    const out: Partial<KeyAttributes> = {};
    if (r.enabled !== undefined) {
      if (typeof r.enabled !== 'boolean') throw new KvError(400, 'BadParameter', "Property 'enabled' must be a boolean.");
      out.enabled = r.enabled;
    }
    for (const f of ['nbf', 'exp'] as const) {
      if (r[f] !== undefined && r[f] !== null) {
        if (typeof r[f] !== 'number' || !Number.isInteger(r[f])) {
          throw new KvError(400, 'BadParameter', `Property '${f}' must be an integer (seconds since the epoch).`);
        }
        out[f] = r[f] as number;
      }
    }
    if (r.exportable !== undefined) {
      if (typeof r.exportable !== 'boolean') throw new KvError(400, 'BadParameter', "Property 'exportable' must be a boolean.");
      out.exportable = r.exportable;
    }
    return out;
  }

  function parseKeyOps(raw: unknown, fallback: readonly string[]): string[] {
    if (raw === undefined || raw === null) return [...fallback];
    if (!Array.isArray(raw) || raw.some((o) => typeof o !== 'string' || !ALL_KEY_OPS.has(o))) {
      throw new KvError(400, 'BadParameter', `Property 'key_ops' has an invalid value: ${JSON.stringify(raw)}.`);
    }
    return [...new Set(raw as string[])];
  }

  function parseTags(raw: unknown): Record<string, string> | undefined {
    if (raw === undefined || raw === null) return undefined;
    if (typeof raw !== 'object' || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
      throw new KvError(400, 'BadParameter', "Property 'tags' must be an object of strings.");
    }
    return { ...(raw as Record<string, string>) };
  }

  async function newVersion(
    params: { kty: 'RSA' | 'RSA-HSM'; keySize: number; publicExponent: number; keyOps: string[]; tags?: Record<string, string> },
    attrs: Partial<KeyAttributes>,
    material?: KeyObject,
  ): Promise<KeyVersion> {
    const privateKey =
      material ??
      (await new Promise<KeyObject>((resolve, reject) =>
        generateKeyPair(
          'rsa',
          { modulusLength: params.keySize, publicExponent: params.publicExponent },
          (err, _pub, priv) => (err ? reject(err) : resolve(priv)),
        ),
      ));
    const jwk = privateKey.export({ format: 'jwk' });
    const now = nowSeconds();
    return {
      version: randomBytes(16).toString('hex'),
      kty: params.kty,
      keySize: params.keySize,
      publicExponent: params.publicExponent,
      privateKey,
      publicKey: createPublicKey(privateKey),
      n: jwk.n!,
      e: jwk.e!,
      keyOps: params.keyOps,
      attributes: {
        enabled: attrs.enabled ?? true,
        ...(attrs.nbf !== undefined ? { nbf: attrs.nbf } : {}),
        ...(attrs.exp !== undefined ? { exp: attrs.exp } : {}),
        created: now,
        updated: now,
        exportable: attrs.exportable ?? false,
      },
      ...(params.tags ? { tags: params.tags } : {}),
    };
  }

  function ensureNameUsable(name: string): void {
    if (!NAME_RE.test(name)) {
      throw new KvError(400, 'BadParameter', `The key name '${name}' is invalid: it must match ^[0-9a-zA-Z-]+$ and be 1-127 characters.`);
    }
    const entry = keys.get(name);
    if (entry?.deleted) {
      throw new KvError(
        409,
        'Conflict',
        `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can be recovered or purged.`,
      );
    }
  }

  async function createKey(name: string, body: Record<string, unknown>) {
    ensureNameUsable(name);
    const kty = body.kty;
    if (kty === undefined) throw new KvError(400, 'BadParameter', "Property 'kty' is required.");
    if (kty !== 'RSA' && kty !== 'RSA-HSM') {
      throw new KvError(400, 'BadParameter', `Key type '${String(kty)}' is not supported by this stand-in (only RSA, RSA-HSM).`);
    }
    const keySize = body.key_size ?? 2048;
    if (keySize !== 2048 && keySize !== 3072 && keySize !== 4096) {
      throw new KvError(400, 'BadParameter', `The key size ${String(keySize)} is not valid for key type RSA; valid sizes are 2048, 3072, 4096.`);
    }
    const publicExponent = body.public_exponent ?? 65537;
    if (typeof publicExponent !== 'number' || !Number.isInteger(publicExponent) || publicExponent < 3 || publicExponent % 2 === 0) {
      throw new KvError(400, 'BadParameter', `The public exponent ${String(publicExponent)} is not valid.`);
    }
    if (body.crv !== undefined && body.crv !== null) {
      throw new KvError(400, 'BadParameter', "Property 'crv' is not valid for key type RSA.");
    }
    const keyOps = parseKeyOps(body.key_ops, RSA_KEY_OPS);
    const attrs = parseAttributes(body.attributes);
    const tags = parseTags(body.tags);
    const v = await newVersion({ kty, keySize, publicExponent, keyOps, ...(tags ? { tags } : {}) }, attrs);
    const entry = keys.get(name) ?? { name, versions: [] };
    entry.versions.push(v);
    keys.set(name, entry);
    return bundle(name, v);
  }

  async function importKey(name: string, body: Record<string, unknown>) {
    ensureNameUsable(name);
    const jwk = body.key as Record<string, unknown> | undefined;
    if (!jwk || typeof jwk !== 'object') throw new KvError(400, 'BadParameter', "Property 'key' is required.");
    if (jwk.kty !== 'RSA' && jwk.kty !== 'RSA-HSM') {
      throw new KvError(400, 'BadParameter', `Key type '${String(jwk.kty)}' is not supported by this stand-in (only RSA).`);
    }
    const parts: Record<string, string> = {};
    for (const f of ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi']) {
      if (jwk[f] === undefined) throw new KvError(400, 'BadParameter', `Property 'key.${f}' is required to import an RSA private key.`);
      parts[f] = b64url(decodeB64url(jwk[f], `key.${f}`));
    }
    let material: KeyObject;
    try {
      material = createPrivateKey({ key: { kty: 'RSA', ...parts }, format: 'jwk' });
    } catch (err) {
      throw new KvError(400, 'BadParameter', `The RSA key is not valid: ${(err as Error).message}`);
    }
    const keySize = material.asymmetricKeyDetails?.modulusLength ?? 0;
    if (keySize < 2048) throw new KvError(400, 'BadParameter', `RSA keys must be at least 2048 bits (got ${keySize}).`);
    const publicExponent = Number(material.asymmetricKeyDetails?.publicExponent ?? 65537n);
    const keyOps = parseKeyOps(jwk.key_ops, RSA_KEY_OPS);
    const attrs = parseAttributes(body.attributes);
    const tags = parseTags(body.tags);
    const kty = body.Hsm === true ? 'RSA-HSM' : 'RSA';
    const v = await newVersion({ kty, keySize, publicExponent, keyOps, ...(tags ? { tags } : {}) }, attrs, material);
    const entry = keys.get(name) ?? { name, versions: [] };
    entry.versions.push(v);
    keys.set(name, entry);
    return bundle(name, v);
  }

  async function rotateKey(name: string) {
    const entry = liveEntry(name);
    const latest = entry.versions[entry.versions.length - 1]!;
    const v = await newVersion(
      {
        kty: latest.kty,
        keySize: latest.keySize,
        publicExponent: latest.publicExponent,
        keyOps: [...latest.keyOps],
        ...(latest.tags ? { tags: { ...latest.tags } } : {}),
      },
      { exportable: latest.attributes.exportable },
    );
    entry.versions.push(v);
    return bundle(name, v);
  }

  function updateKey(name: string, version: string, body: Record<string, unknown>) {
    const v = findVersion(name, version);
    const attrs = parseAttributes(body.attributes);
    if (body.key_ops !== undefined && body.key_ops !== null) v.keyOps = parseKeyOps(body.key_ops, v.keyOps);
    const tags = parseTags(body.tags);
    if (tags) v.tags = tags;
    if (attrs.enabled !== undefined) v.attributes.enabled = attrs.enabled;
    if (attrs.nbf !== undefined) v.attributes.nbf = attrs.nbf;
    if (attrs.exp !== undefined) v.attributes.exp = attrs.exp;
    v.attributes.updated = nowSeconds();
    return bundle(name, v);
  }

  function page<T>(items: T[], url: URL): { value: T[]; nextLink: string | null } {
    const maxRaw = url.searchParams.get('maxresults');
    const max = maxRaw === null ? 25 : Number(maxRaw);
    if (!Number.isInteger(max) || max < 1 || max > 25) {
      throw new KvError(400, 'BadParameter', "The value of 'maxresults' must be an integer between 1 and 25.");
    }
    const skip = Number(url.searchParams.get('$skiptoken') ?? '0') || 0;
    const value = items.slice(skip, skip + max);
    let nextLink: string | null = null;
    if (skip + max < items.length) {
      const next = new URL(`${vaultUrl}${url.pathname}`);
      next.searchParams.set('api-version', url.searchParams.get('api-version') ?? '');
      next.searchParams.set('$skiptoken', String(skip + max));
      next.searchParams.set('maxresults', String(max));
      nextLink = next.toString();
    }
    return { value, nextLink };
  }

  function cryptoOp(
    op: 'wrapKey' | 'unwrapKey' | 'encrypt' | 'decrypt',
    name: string,
    version: string,
    body: Record<string, unknown>,
  ) {
    const v = findVersion(name, version);
    const now = nowSeconds();
    if (!v.attributes.enabled) throw new KvError(403, 'Forbidden', `Operation ${op} is not allowed on a disabled key.`);
    if (v.attributes.nbf !== undefined && now < v.attributes.nbf) {
      throw new KvError(403, 'Forbidden', `Operation ${op} is not allowed on a key that is not yet valid.`);
    }
    if (v.attributes.exp !== undefined && now > v.attributes.exp) {
      throw new KvError(403, 'Forbidden', `Operation ${op} is not allowed on an expired key.`);
    }
    if (!v.keyOps.includes(op)) throw new KvError(403, 'Forbidden', `Operation ${op} is not permitted on this key.`);
    const alg = body.alg;
    if (alg === undefined) throw new KvError(400, 'BadParameter', "Property 'alg' is required.");
    if (body.value === undefined) throw new KvError(400, 'BadParameter', "Property 'value' is required.");
    const input = decodeB64url(body.value, 'value');
    let oaepHash: 'sha256' | 'sha1';
    if (alg === 'RSA-OAEP-256') oaepHash = 'sha256';
    else if (alg === 'RSA-OAEP') oaepHash = 'sha1';
    else if (alg === 'RSA1_5' && (op === 'wrapKey' || op === 'encrypt')) {
      const out = publicEncrypt({ key: v.publicKey, padding: cryptoConstants.RSA_PKCS1_PADDING }, input);
      return { kid: kidOf(name, v.version), value: b64url(out) };
    } else {
      throw new KvError(400, 'BadParameter', `Algorithm '${String(alg)}' is not supported for operation ${op} on an RSA key by this stand-in.`);
    }
    const k = v.keySize / 8;
    const hLen = oaepHash === 'sha256' ? 32 : 20;
    if (op === 'wrapKey' || op === 'encrypt') {
      if (input.length > k - 2 * hLen - 2) {
        throw new KvError(400, 'BadParameter', `The value is too long for ${alg} with a ${v.keySize}-bit key (max ${k - 2 * hLen - 2} bytes).`);
      }
      const out = publicEncrypt({ key: v.publicKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash }, input);
      return { kid: kidOf(name, v.version), value: b64url(out) };
    }
    if (input.length !== k) {
      throw new KvError(400, 'BadParameter', `The ciphertext length ${input.length} does not match the ${v.keySize}-bit key.`);
    }
    let out: Buffer;
    try {
      out = privateDecrypt({ key: v.privateKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash }, input);
    } catch {
      throw new KvError(400, 'BadParameter', 'The ciphertext could not be decrypted with this key and algorithm.');
    }
    return { kid: kidOf(name, v.version), value: b64url(out) };
  }

  function deleteKey(name: string) {
    const entry = liveEntry(name);
    const now = nowSeconds();
    entry.deleted = { deletedDate: now, scheduledPurgeDate: now + RECOVERABLE_DAYS * 86400 };
    return deletedBundle(entry);
  }

  function deletedEntry(name: string): KeyEntry {
    const entry = keys.get(name);
    if (!entry?.deleted) {
      throw new KvError(404, 'KeyNotFound', `Deleted Key not found: ${name}`);
    }
    return entry;
  }

  // ---- routing

  function classify(method: string, segs: string[]): { op: KeyVaultOperation; run: (body: Record<string, unknown>, url: URL) => unknown | Promise<unknown> } {
    const [root, name, third, fourth, ...rest] = segs;
    const unknownRoute = () => {
      throw new KvError(400, 'BadParameter', `The request ${method} /${segs.join('/')} is not a supported Key Vault keys operation.`);
    };
    if (rest.length > 0) return { op: 'unknown', run: unknownRoute };
    if (root === 'keys') {
      if (name === undefined || name === '') {
        if (method === 'GET') {
          return {
            op: 'list',
            run: (_b, url) =>
              page(
                [...keys.values()]
                  .filter((e) => !e.deleted)
                  .map((e) => {
                    const latest = e.versions[e.versions.length - 1]!;
                    return { kid: kidOf(e.name), attributes: attributesJson(latest.attributes), ...(latest.tags ? { tags: latest.tags } : {}) };
                  }),
                url,
              ),
          };
        }
        return { op: 'unknown', run: unknownRoute };
      }
      if (third === undefined || (third === '' && fourth === undefined)) {
        if (method === 'GET') return { op: 'get', run: () => bundle(name, findVersion(name, '')) };
        if (method === 'PUT') return { op: 'import', run: (b) => importKey(name, b) };
        if (method === 'DELETE') return { op: 'delete', run: () => deleteKey(name) };
        if (method === 'PATCH') return { op: 'update', run: (b) => updateKey(name, '', b) };
        return { op: 'unknown', run: unknownRoute };
      }
      if (fourth === undefined) {
        if (third === 'create' && method === 'POST') return { op: 'create', run: (b) => createKey(name, b) };
        if (third === 'rotate' && method === 'POST') return { op: 'rotate', run: () => rotateKey(name) };
        if (third === 'versions' && method === 'GET') {
          return {
            op: 'listVersions',
            run: (_b, url) =>
              page(
                liveEntry(name).versions.map((v) => ({
                  kid: kidOf(name, v.version),
                  attributes: attributesJson(v.attributes),
                  ...(v.tags ? { tags: v.tags } : {}),
                })),
                url,
              ),
          };
        }
        if (method === 'GET') return { op: 'get', run: () => bundle(name, findVersion(name, third)) };
        if (method === 'PATCH') return { op: 'update', run: (b) => updateKey(name, third, b) };
        return { op: 'unknown', run: unknownRoute };
      }
      const ops: Record<string, 'wrapKey' | 'unwrapKey' | 'encrypt' | 'decrypt'> = {
        wrapkey: 'wrapKey',
        unwrapkey: 'unwrapKey',
        encrypt: 'encrypt',
        decrypt: 'decrypt',
      };
      const op = ops[fourth.toLowerCase()];
      if (op && method === 'POST') return { op, run: (b) => cryptoOp(op, name, third, b) };
      return { op: 'unknown', run: unknownRoute };
    }
    if (root === 'deletedkeys' && name) {
      if (third === undefined) {
        if (method === 'GET') return { op: 'getDeleted', run: () => deletedBundle(deletedEntry(name)) };
        if (method === 'DELETE') {
          return {
            op: 'purge',
            run: () => {
              deletedEntry(name);
              keys.delete(name);
              return undefined; // 204
            },
          };
        }
      }
      if (third === 'recover' && fourth === undefined && method === 'POST') {
        return {
          op: 'recover',
          run: () => {
            const entry = deletedEntry(name);
            delete entry.deleted;
            return bundle(name, entry.versions[entry.versions.length - 1]!);
          },
        };
      }
    }
    return { op: 'unknown', run: unknownRoute };
  }

  function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const headers: Record<string, string> = {
      'cache-control': 'no-cache',
      'x-ms-request-id': randomUUID(),
      'x-ms-keyvault-service-version': serviceVersion,
      'x-ms-keyvault-region': 'local',
      'strict-transport-security': 'max-age=31536000;includeSubDomains',
      'x-content-type-options': 'nosniff',
      ...extra,
    };
    if (body === undefined) {
      res.writeHead(status, headers).end();
      return;
    }
    const text = JSON.stringify(body);
    res
      .writeHead(status, {
        ...headers,
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(text)),
      })
      .end(text);
  }

  function readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 1 << 20) {
          reject(new KvError(413, 'RequestEntityTooLarge', 'The request body is too large.'));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  function checkToken(req: IncomingMessage): 'ok' | 'missing' | 'invalid' | 'revoked' {
    const h = req.headers.authorization;
    if (!h) return 'missing';
    const m = /^Bearer (\S+)$/i.exec(h);
    if (!m) return 'invalid';
    if (revoked.has(m[1]!)) return 'revoked';
    const exp = tokens.get(m[1]!);
    return exp !== undefined && exp > Date.now() ? 'ok' : 'invalid';
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.total++;
    const url = new URL(req.url ?? '/', vaultUrl);
    const method = (req.method ?? 'GET').toUpperCase();
    const segs = url.pathname.split('/').slice(1);
    const { op, run } = classify(method, segs);
    const entry: RequestLogEntry = {
      method,
      path: url.pathname,
      operation: op,
      apiVersion: url.searchParams.get('api-version'),
      authorized: false,
      status: 0,
    };
    requests.push(entry);
    const finish = (status: number, body: unknown, extra?: Record<string, string>) => {
      entry.status = status;
      const code = (body as { error?: { code?: string } } | undefined)?.error?.code;
      if (code) entry.errorCode = code;
      send(res, status, body, extra);
    };

    if (mode === 'hang') {
      stats.faulted++;
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      req.resume();
      return;
    }
    if (mode === 'reset') {
      stats.faulted++;
      req.socket.destroy();
      return;
    }
    if (mode === '503') {
      stats.faulted++;
      req.resume();
      finish(503, { error: { code: 'ServiceUnavailable', message: 'The service is unavailable (stand-in fault injection).' } });
      return;
    }

    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (err) {
      if (err instanceof KvError) finish(err.status, { error: { code: err.code, message: err.message } });
      return;
    }

    // Authentication comes first: the SDK's first request carries no token and no body.
    const auth = checkToken(req);
    if (auth !== 'ok') {
      stats.unauthorized++;
      if (auth === 'revoked') {
        // Continuous Access Evaluation: a revoked token gets a claims challenge, on which
        // the SDK asks its credential for a fresh token (with `claims`) and retries.
        const claims = Buffer.from(
          JSON.stringify({ access_token: { nbf: { essential: true, value: String(nowSeconds()) } } }),
        ).toString('base64');
        finish(
          401,
          { error: { code: 'Unauthorized', message: 'AKV10013: The token has been revoked (claims challenge).' } },
          {
            'www-authenticate': `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="${claims}"`,
          },
        );
        return;
      }
      const message =
        auth === 'invalid'
          ? 'AKV10032: Invalid or expired bearer token (not issued by this stand-in).'
          : 'AKV10000: Request is missing a Bearer or PoP token.';
      finish(401, { error: { code: 'Unauthorized', message } }, { 'www-authenticate': challenge });
      return;
    }
    entry.authorized = true;
    stats.byOperation[op] = (stats.byOperation[op] ?? 0) + 1;

    try {
      if (!entry.apiVersion) {
        throw new KvError(400, 'BadParameter', 'The api-version query parameter is missing.');
      }
      if (!/^(\d+\.\d+(-preview)?|\d{4}-\d{2}-\d{2}(-preview)?)$/.test(entry.apiVersion)) {
        throw new KvError(400, 'BadParameter', `The specified version (${entry.apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`);
      }
      let json: Record<string, unknown> = {};
      if (body.length > 0) {
        try {
          const parsed: unknown = JSON.parse(body.toString('utf8'));
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
          json = parsed as Record<string, unknown>;
        } catch {
          throw new KvError(400, 'BadParameter', 'The request body is not a valid JSON object.');
        }
      }
      const result = await run(json, url);
      stats.ok[op] = (stats.ok[op] ?? 0) + 1;
      finish(result === undefined ? 204 : 200, result);
    } catch (err) {
      if (err instanceof KvError) {
        finish(err.status, { error: { code: err.code, message: err.message } });
      } else {
        finish(500, { error: { code: 'InternalServerError', message: (err as Error).message } });
      }
    }
  }

  const server: Server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: { code: 'InternalServerError', message: String(err) } });
    });
  });
  server.keepAliveTimeout = 5000;
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', onError);
        const addr = server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
      for (const r of hanging) r.destroy();
    });

  const port = await listen(opts.port ?? 0);
  vaultUrl = `https://${host}:${port}`;

  const credential: StandInCredential = {
    calls: [],
    async getToken(scopes, options) {
      const list = Array.isArray(scopes) ? [...scopes] : [scopes];
      credential.calls.push({ scopes: list, tenantId: options?.tenantId, claims: options?.claims });
      if (list.length !== 1 || list[0] !== KEY_VAULT_SCOPE) {
        throw new Error(`stand-in credential: unexpected scopes ${JSON.stringify(list)} (want ["${KEY_VAULT_SCOPE}"])`);
      }
      if (options?.tenantId !== undefined && options.tenantId !== tenantId) {
        throw new Error(`stand-in credential: unexpected tenant ${options.tenantId} (challenge announced ${tenantId})`);
      }
      const token = `kvtest.${randomBytes(24).toString('base64url')}`;
      const expiresOnTimestamp = Date.now() + tokenLifetime * 1000;
      tokens.set(token, expiresOnTimestamp);
      stats.tokensIssued++;
      return { token, expiresOnTimestamp, tokenType: 'Bearer' };
    },
  };

  let closed = false;
  return {
    get vaultUrl() {
      return vaultUrl;
    },
    port,
    tenantId,
    caPem: tls.caPem,
    credential,
    clientOptions: () => ({
      tlsOptions: { ca: tls.caPem },
      disableChallengeResourceVerification: true as const,
      retryOptions: { maxRetries: 0 },
    }),
    acceptToken(token, expiresOnTimestamp = Date.now() + tokenLifetime * 1000) {
      tokens.set(token, expiresOnTimestamp);
    },
    revokeAllTokens() {
      for (const t of tokens.keys()) revoked.add(t);
      tokens.clear();
    },
    get unreachable() {
      return mode;
    },
    async setUnreachable(next) {
      if (closed) throw new Error('key vault stand-in is closed');
      const prev = mode;
      mode = next;
      if (next === 'refuse' && prev !== 'refuse') {
        await stopListening();
      } else if (next !== 'refuse' && prev === 'refuse') {
        await listen(port);
      }
      if (next !== 'hang') {
        for (const r of hanging) r.destroy();
        hanging.clear();
      }
    },
    stats: () => structuredClone(stats),
    requests,
    resetStats() {
      stats = { ...emptyStats(), tokensIssued: 0 };
      requests.length = 0;
    },
    versionsOf(name) {
      return keys.get(name)?.versions.map((v) => v.version) ?? [];
    },
    async close() {
      if (closed) return;
      closed = true;
      await stopListening();
    },
  };
}

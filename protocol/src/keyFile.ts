/**
 * Signing-key file format: what the operator writes into the proxy's key
 * directory (one JSON file per key, `<keyId hex>.json`, mounted from a Secret)
 * and what the proxy loads. See docs/key-files.md.
 *
 * {
 *   "version": 1,
 *   "keyId": "<hex token_key_id>",
 *   "purpose": "credit" | "permanent" | "transient",
 *   "epoch": "YYYY-MM",                 // transient keys only
 *   "notBefore": "<ISO 8601>",          // published before use
 *   "issuanceEnd": "<ISO 8601>",        // no signing at or after this
 *   "redemptionEnd": "<ISO 8601>",      // tokens rejected at or after this
 *   "publicKey": "<base64url RSASSA-PSS SPKI>",
 *   "privateKey": { "type": "plain", "pkcs8": "<base64url PKCS#8 DER>" }
 *              | { "type": "envelope", "kek": { "provider": "local" | "azure-keyvault", "keyId": "…", "fingerprint": "…" },
 *                  "wrapAlgorithm": "RSA-OAEP-256", "wrappedDataKey": "…", "iv": "…", "ciphertext": "…", "tag": "…" }
 * }
 *
 * `kek.fingerprint` names the exact key-encryption key (optional: files written
 * before it existed still read): for a local KEK `sha256:<hex>` of its public key
 * (SubjectPublicKeyInfo DER), for Key Vault `<key name>/<version>` (the version is
 * in `keyId` too). A name alone is not an identity: a Secret deleted and created
 * again under the same name holds another key, and only the fingerprint tells.
 *
 * Envelope: a fresh AES-256-GCM data key encrypts the PKCS#8 key, with the key
 * id as associated data (a blob cannot be swapped onto another key's file); the
 * data key is wrapped by a key-encryption key (Azure Key Vault `wrapKey`, or a
 * local RSA key). Key Vault cannot hold the signing key itself: it offers only
 * padded RSA, and blind signing needs the raw private operation.
 */
import { constants, createCipheriv, createHash, createDecipheriv, createPrivateKey, createPublicKey, privateDecrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { bytesEqual, fromBase64Url, fromHex, toBase64Url, toHex } from './bytes.js';
import { ProtocolError } from './errors.js';
import { pssSpkiFromPublicKey, tokenKeyId } from './keyId.js';
import { isEpoch, isKeyPurpose, type KeyPurpose } from './keyPurpose.js';

export interface KekRef {
  provider: 'local' | 'azure-keyvault';
  /** Local: a name; Azure: the key's URL (`https://<vault>/keys/<name>/<version>`). */
  keyId: string;
  /** Local: `sha256:<64 hex>` of the KEK's public key; Azure: `<name>/<version>`. Absent in older files. */
  fingerprint?: string;
}

const LOCAL_FINGERPRINT_RE = /^sha256:[0-9a-f]{64}$/;
const AZURE_FINGERPRINT_RE = /^[0-9a-zA-Z-]{1,127}\/[0-9a-zA-Z]{1,64}$/;

/** `sha256:<hex>` of a local key-encryption key's public key (SPKI DER): what key files name it by. */
export function localKekFingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

/** `<name>/<version>` of a Key Vault key URL (`https://<vault>/keys/<name>/<version>`), or undefined. */
export function azureKekFingerprint(keyUrl: string): string | undefined {
  const m = /\/keys\/([0-9a-zA-Z-]{1,127})\/([0-9a-zA-Z]{1,64})\/?$/.exec(keyUrl);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/** Short form for messages: `local:<name> (sha256:1a2b3c4d…)`, or the Key Vault key URL. */
export function describeKekRef(ref: KekRef): string {
  if (ref.provider === 'azure-keyvault') return ref.keyId;
  return `local:${ref.keyId}${ref.fingerprint ? ` (${ref.fingerprint.slice(0, 23)}…)` : ''}`;
}

export interface PlainPrivateKey {
  type: 'plain';
  pkcs8: string;
}

export interface EnvelopePrivateKey {
  type: 'envelope';
  kek: KekRef;
  wrapAlgorithm: 'RSA-OAEP-256';
  wrappedDataKey: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

export interface KeyMetadata {
  keyId: string;
  purpose: KeyPurpose;
  epoch?: string;
  notBefore: string;
  issuanceEnd: string;
  redemptionEnd: string;
  publicKey: string;
}

export interface SigningKeyFile extends KeyMetadata {
  version: 1;
  privateKey: PlainPrivateKey | EnvelopePrivateKey;
}

/** Wraps data keys (operator side). */
export interface KeyWrapper {
  readonly ref: KekRef;
  wrapKey(dataKey: Uint8Array): Promise<Uint8Array>;
}

/** Unwraps data keys (proxy side); chooses by `ref`. */
export interface KeyUnwrapper {
  unwrapKey(ref: KekRef, wrapped: Uint8Array): Promise<Uint8Array>;
}

/** A local RSA key-encryption key (the default without Azure), RSA-OAEP-256 like Key Vault's. */
export class LocalKeyEncryptionKey implements KeyWrapper, KeyUnwrapper {
  readonly ref: KekRef;
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  constructor(name: string, privateKeyPem: string | KeyObject) {
    this.privateKey = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
    this.publicKey = createPublicKey(this.privateKey);
    this.ref = { provider: 'local', keyId: name, fingerprint: localKekFingerprint(this.publicKey) };
  }
  get fingerprint(): string {
    return this.ref.fingerprint!;
  }
  async wrapKey(dataKey: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(publicEncrypt({ key: this.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, dataKey));
  }
  async unwrapKey(ref: KekRef, wrapped: Uint8Array): Promise<Uint8Array> {
    if (ref.provider !== 'local' || ref.keyId !== this.ref.keyId) {
      throw new ProtocolError('decryption_failure', `no local key-encryption key named ${JSON.stringify(ref.keyId)}`);
    }
    if (ref.fingerprint !== undefined && ref.fingerprint !== this.ref.fingerprint) {
      throw new ProtocolError('decryption_failure', `wrapped under local key-encryption key ${ref.keyId} ${ref.fingerprint}, but the one configured is ${this.ref.fingerprint}: restore the original key-encryption key`);
    }
    try {
      return new Uint8Array(privateDecrypt({ key: this.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped));
    } catch {
      throw new ProtocolError('decryption_failure', 'data key does not unwrap with the local key-encryption key');
    }
  }
}

const AAD_PREFIX = new TextEncoder().encode('llmtor-signing-key-v1:');

function aad(keyIdHex: string): Buffer {
  return Buffer.concat([AAD_PREFIX, fromHex(keyIdHex)]);
}

export function keyMetadata(privateOrPublic: KeyObject, meta: Omit<KeyMetadata, 'keyId' | 'publicKey'>): KeyMetadata {
  const spki = pssSpkiFromPublicKey(privateOrPublic);
  return { keyId: toHex(tokenKeyId(spki)), publicKey: toBase64Url(spki), ...meta };
}

/** Builds a key file; with `wrapper`, the private key is envelope-encrypted. */
export async function sealSigningKey(privateKey: KeyObject, meta: Omit<KeyMetadata, 'keyId' | 'publicKey'>, wrapper?: KeyWrapper): Promise<SigningKeyFile> {
  const m = keyMetadata(privateKey, meta);
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  if (!wrapper) return { version: 1, ...m, privateKey: { type: 'plain', pkcs8: toBase64Url(pkcs8) } };
  const dataKey = randomBytes(32);
  const iv = randomBytes(12);
  try {
    const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
    cipher.setAAD(aad(m.keyId));
    const ciphertext = Buffer.concat([cipher.update(pkcs8), cipher.final()]);
    const wrapped = await wrapper.wrapKey(dataKey);
    return {
      version: 1,
      ...m,
      privateKey: {
        type: 'envelope',
        kek: wrapper.ref,
        wrapAlgorithm: 'RSA-OAEP-256',
        wrappedDataKey: toBase64Url(wrapped),
        iv: toBase64Url(iv),
        ciphertext: toBase64Url(ciphertext),
        tag: toBase64Url(cipher.getAuthTag()),
      },
    };
  } finally {
    dataKey.fill(0);
    pkcs8.fill(0);
  }
}

/** Re-wraps the data key of an envelope file under a new key-encryption key (Key Vault key rotation). */
export async function rewrapSigningKey(file: SigningKeyFile, unwrapper: KeyUnwrapper, wrapper: KeyWrapper): Promise<SigningKeyFile> {
  if (file.privateKey.type !== 'envelope') return file;
  const dataKey = await unwrapper.unwrapKey(file.privateKey.kek, fromBase64Url(file.privateKey.wrappedDataKey));
  try {
    const wrapped = await wrapper.wrapKey(dataKey);
    return { ...file, privateKey: { ...file.privateKey, kek: wrapper.ref, wrappedDataKey: toBase64Url(wrapped) } };
  } finally {
    dataKey.fill(0);
  }
}

function isIso(v: unknown): v is string {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v)) && /^\d{4}-\d{2}-\d{2}T/.test(v);
}

/** Checks the public fields shared by key files and key metadata. */
function checkKeyMetadata(o: Record<string, unknown>, bad: (msg: string) => never): void {
  if (typeof o.keyId !== 'string' || !/^[0-9a-f]{64}$/.test(o.keyId)) bad('keyId must be 64 lowercase hex digits');
  if (!isKeyPurpose(o.purpose)) bad('purpose must be credit, permanent or transient');
  if (o.epoch !== undefined && !isEpoch(o.epoch)) bad('epoch must be YYYY-MM');
  if (o.purpose === 'transient' && o.epoch === undefined) bad('a transient key needs an epoch');
  for (const f of ['notBefore', 'issuanceEnd', 'redemptionEnd']) if (!isIso(o[f])) bad(`${f} must be an ISO 8601 time`);
  if (Date.parse(o.issuanceEnd as string) > Date.parse(o.redemptionEnd as string)) bad('issuanceEnd is after redemptionEnd');
  if (typeof o.publicKey !== 'string') bad('publicKey must be base64url');
  fromBase64Url(o.publicKey as string, 'publicKey');
  if (!bytesEqual(tokenKeyId(fromBase64Url(o.publicKey as string)), fromHex(o.keyId as string))) bad('keyId is not SHA-256 of publicKey');
}

/**
 * Parses the public metadata of one key (an element of the operator's `keys.json`,
 * the directory ConfigMap): what redemption-only pods load instead of key files.
 */
export function parseKeyMetadata(doc: unknown): KeyMetadata {
  const bad = (msg: string): never => {
    throw new ProtocolError('malformed', `key metadata: ${msg}`);
  };
  if (typeof doc !== 'object' || doc === null) return bad('must be a JSON object');
  checkKeyMetadata(doc as Record<string, unknown>, bad);
  const o = doc as Record<string, unknown>;
  if ('privateKey' in o) bad('must not hold a private key');
  return doc as KeyMetadata;
}

/** Validates the JSON of a key file (no crypto). */
export function parseSigningKeyFile(input: unknown): SigningKeyFile {
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input);
    } catch {
      throw new ProtocolError('malformed', 'key file is not JSON');
    }
  }
  const bad = (msg: string): never => {
    throw new ProtocolError('malformed', `key file: ${msg}`);
  };
  if (typeof doc !== 'object' || doc === null) return bad('must be a JSON object');
  const o = doc as Record<string, unknown>;
  if (o.version !== 1) bad(`unsupported version ${JSON.stringify(o.version)}`);
  checkKeyMetadata(o, bad);
  const pk = o.privateKey as Record<string, unknown> | undefined;
  if (typeof pk !== 'object' || pk === null) return bad('privateKey missing');
  if (pk.type === 'plain') {
    if (typeof pk.pkcs8 !== 'string') bad('privateKey.pkcs8 must be base64url');
  } else if (pk.type === 'envelope') {
    const kek = pk.kek as Record<string, unknown> | undefined;
    if (!kek || (kek.provider !== 'local' && kek.provider !== 'azure-keyvault') || typeof kek.keyId !== 'string') return bad('privateKey.kek must name a provider and keyId');
    if (kek.fingerprint !== undefined) {
      const re = kek.provider === 'local' ? LOCAL_FINGERPRINT_RE : AZURE_FINGERPRINT_RE;
      if (typeof kek.fingerprint !== 'string' || !re.test(kek.fingerprint)) bad(`privateKey.kek.fingerprint must be ${kek.provider === 'local' ? 'sha256:<64 hex>' : '<key name>/<version>'}`);
      if (kek.provider === 'azure-keyvault' && azureKekFingerprint(kek.keyId as string) !== kek.fingerprint) bad('privateKey.kek.fingerprint does not match the Key Vault key id');
    }
    if (pk.wrapAlgorithm !== 'RSA-OAEP-256') bad('privateKey.wrapAlgorithm must be RSA-OAEP-256');
    for (const f of ['wrappedDataKey', 'iv', 'ciphertext', 'tag']) {
      if (typeof pk[f] !== 'string') bad(`privateKey.${f} must be base64url`);
      fromBase64Url(pk[f] as string, `privateKey.${f}`);
    }
  } else bad('privateKey.type must be plain or envelope');
  return doc as SigningKeyFile;
}

/** Decrypts (if needed) and loads the private key; checks it matches the file's public key. */
export async function openSigningKeyFile(file: SigningKeyFile, unwrapper?: KeyUnwrapper): Promise<KeyObject> {
  let pkcs8: Buffer;
  const pk = file.privateKey;
  if (pk.type === 'plain') {
    pkcs8 = Buffer.from(fromBase64Url(pk.pkcs8, 'privateKey.pkcs8'));
  } else {
    if (!unwrapper) throw new ProtocolError('decryption_failure', `key ${file.keyId.slice(0, 12)}… is envelope-encrypted (${pk.kek.provider}) and no key-encryption key is configured`);
    const dataKey = await unwrapper.unwrapKey(pk.kek, fromBase64Url(pk.wrappedDataKey));
    try {
      const d = createDecipheriv('aes-256-gcm', dataKey, fromBase64Url(pk.iv));
      d.setAAD(aad(file.keyId));
      d.setAuthTag(fromBase64Url(pk.tag));
      pkcs8 = Buffer.concat([d.update(fromBase64Url(pk.ciphertext)), d.final()]);
    } catch {
      throw new ProtocolError('decryption_failure', `key ${file.keyId.slice(0, 12)}…: ciphertext does not decrypt (wrong key-encryption key or tampered file)`);
    } finally {
      dataKey.fill(0);
    }
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  } catch {
    throw new ProtocolError('malformed', `key ${file.keyId.slice(0, 12)}…: private key does not parse`);
  } finally {
    pkcs8.fill(0);
  }
  if (toHex(tokenKeyId(key)) !== file.keyId) throw new ProtocolError('unsupported_key', `key ${file.keyId.slice(0, 12)}…: private key does not match keyId`);
  return key;
}

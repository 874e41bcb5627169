/**
 * The key model of the Key Vault stand-in (keyVaultStandIn.ts): RSA keys with
 * versions, attributes, soft delete; the keys operations of the REST API on
 * them; and the routing of a request path to an operation. No HTTP, no auth.
 */
import {
  constants as cryptoConstants,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';

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

export class KvError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);
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

export type RouteHandler = (body: Record<string, unknown>, url: URL) => unknown | Promise<unknown>;

export class KeyStore {
  private readonly keys = new Map<string, KeyEntry>();

  /** `vaultUrl` is read on each use: it is known only once the server listens. */
  constructor(private readonly vaultUrl: () => string) {}

  /** Versions of a key, oldest first ([] if unknown). */
  versionsOf(name: string): string[] {
    return this.keys.get(name)?.versions.map((v) => v.version) ?? [];
  }

  private kidOf(name: string, version?: string): string {
    return version ? `${this.vaultUrl()}/keys/${name}/${version}` : `${this.vaultUrl()}/keys/${name}`;
  }

  private attributesJson(a: KeyAttributes) {
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

  private bundle(name: string, v: KeyVersion) {
    return {
      key: { kid: this.kidOf(name, v.version), kty: v.kty, key_ops: [...v.keyOps], n: v.n, e: v.e },
      attributes: this.attributesJson(v.attributes),
      ...(v.tags ? { tags: { ...v.tags } } : {}),
    };
  }

  private deletedBundle(entry: KeyEntry) {
    const latest = entry.versions[entry.versions.length - 1]!;
    return {
      recoveryId: `${this.vaultUrl()}/deletedkeys/${entry.name}`,
      deletedDate: entry.deleted!.deletedDate,
      scheduledPurgeDate: entry.deleted!.scheduledPurgeDate,
      ...this.bundle(entry.name, latest),
    };
  }

  private liveEntry(name: string): KeyEntry {
    const entry = this.keys.get(name);
    if (!entry || entry.deleted) throw keyNotFound(name);
    return entry;
  }

  private findVersion(name: string, version: string): KeyVersion {
    const entry = this.liveEntry(name);
    if (version === '') return entry.versions[entry.versions.length - 1]!;
    const v = entry.versions.find((x) => x.version === version);
    if (!v) throw keyNotFound(name, version);
    return v;
  }

  private parseAttributes(raw: unknown): Partial<KeyAttributes> {
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

  private parseKeyOps(raw: unknown, fallback: readonly string[]): string[] {
    if (raw === undefined || raw === null) return [...fallback];
    if (!Array.isArray(raw) || raw.some((o) => typeof o !== 'string' || !ALL_KEY_OPS.has(o))) {
      throw new KvError(400, 'BadParameter', `Property 'key_ops' has an invalid value: ${JSON.stringify(raw)}.`);
    }
    return [...new Set(raw as string[])];
  }

  private parseTags(raw: unknown): Record<string, string> | undefined {
    if (raw === undefined || raw === null) return undefined;
    if (typeof raw !== 'object' || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
      throw new KvError(400, 'BadParameter', "Property 'tags' must be an object of strings.");
    }
    return { ...(raw as Record<string, string>) };
  }

  private async newVersion(
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

  private ensureNameUsable(name: string): void {
    if (!NAME_RE.test(name)) {
      throw new KvError(400, 'BadParameter', `The key name '${name}' is invalid: it must match ^[0-9a-zA-Z-]+$ and be 1-127 characters.`);
    }
    const entry = this.keys.get(name);
    if (entry?.deleted) {
      throw new KvError(
        409,
        'Conflict',
        `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can be recovered or purged.`,
      );
    }
  }

  private async createKey(name: string, body: Record<string, unknown>) {
    this.ensureNameUsable(name);
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
    const keyOps = this.parseKeyOps(body.key_ops, RSA_KEY_OPS);
    const attrs = this.parseAttributes(body.attributes);
    const tags = this.parseTags(body.tags);
    const v = await this.newVersion({ kty, keySize, publicExponent, keyOps, ...(tags ? { tags } : {}) }, attrs);
    const entry = this.keys.get(name) ?? { name, versions: [] };
    entry.versions.push(v);
    this.keys.set(name, entry);
    return this.bundle(name, v);
  }

  private async importKey(name: string, body: Record<string, unknown>) {
    this.ensureNameUsable(name);
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
    const keyOps = this.parseKeyOps(jwk.key_ops, RSA_KEY_OPS);
    const attrs = this.parseAttributes(body.attributes);
    const tags = this.parseTags(body.tags);
    const kty = body.Hsm === true ? 'RSA-HSM' : 'RSA';
    const v = await this.newVersion({ kty, keySize, publicExponent, keyOps, ...(tags ? { tags } : {}) }, attrs, material);
    const entry = this.keys.get(name) ?? { name, versions: [] };
    entry.versions.push(v);
    this.keys.set(name, entry);
    return this.bundle(name, v);
  }

  private async rotateKey(name: string) {
    const entry = this.liveEntry(name);
    const latest = entry.versions[entry.versions.length - 1]!;
    const v = await this.newVersion(
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
    return this.bundle(name, v);
  }

  private updateKey(name: string, version: string, body: Record<string, unknown>) {
    const v = this.findVersion(name, version);
    const attrs = this.parseAttributes(body.attributes);
    if (body.key_ops !== undefined && body.key_ops !== null) v.keyOps = this.parseKeyOps(body.key_ops, v.keyOps);
    const tags = this.parseTags(body.tags);
    if (tags) v.tags = tags;
    if (attrs.enabled !== undefined) v.attributes.enabled = attrs.enabled;
    if (attrs.nbf !== undefined) v.attributes.nbf = attrs.nbf;
    if (attrs.exp !== undefined) v.attributes.exp = attrs.exp;
    v.attributes.updated = nowSeconds();
    return this.bundle(name, v);
  }

  private page<T>(items: T[], url: URL): { value: T[]; nextLink: string | null } {
    const maxRaw = url.searchParams.get('maxresults');
    const max = maxRaw === null ? 25 : Number(maxRaw);
    if (!Number.isInteger(max) || max < 1 || max > 25) {
      throw new KvError(400, 'BadParameter', "The value of 'maxresults' must be an integer between 1 and 25.");
    }
    const skip = Number(url.searchParams.get('$skiptoken') ?? '0') || 0;
    const value = items.slice(skip, skip + max);
    let nextLink: string | null = null;
    if (skip + max < items.length) {
      const next = new URL(`${this.vaultUrl()}${url.pathname}`);
      next.searchParams.set('api-version', url.searchParams.get('api-version') ?? '');
      next.searchParams.set('$skiptoken', String(skip + max));
      next.searchParams.set('maxresults', String(max));
      nextLink = next.toString();
    }
    return { value, nextLink };
  }

  private cryptoOp(
    op: 'wrapKey' | 'unwrapKey' | 'encrypt' | 'decrypt',
    name: string,
    version: string,
    body: Record<string, unknown>,
  ) {
    const v = this.findVersion(name, version);
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
      return { kid: this.kidOf(name, v.version), value: b64url(out) };
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
      return { kid: this.kidOf(name, v.version), value: b64url(out) };
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
    return { kid: this.kidOf(name, v.version), value: b64url(out) };
  }

  private deleteKey(name: string) {
    const entry = this.liveEntry(name);
    const now = nowSeconds();
    entry.deleted = { deletedDate: now, scheduledPurgeDate: now + RECOVERABLE_DAYS * 86400 };
    return this.deletedBundle(entry);
  }

  private deletedEntry(name: string): KeyEntry {
    const entry = this.keys.get(name);
    if (!entry?.deleted) {
      throw new KvError(404, 'KeyNotFound', `Deleted Key not found: ${name}`);
    }
    return entry;
  }

  /** The operation a request names, and how to run it against this store. */

  route(method: string, segs: string[]): { op: KeyVaultOperation; run: RouteHandler } {
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
              this.page(
                [...this.keys.values()]
                  .filter((e) => !e.deleted)
                  .map((e) => {
                    const latest = e.versions[e.versions.length - 1]!;
                    return { kid: this.kidOf(e.name), attributes: this.attributesJson(latest.attributes), ...(latest.tags ? { tags: latest.tags } : {}) };
                  }),
                url,
              ),
          };
        }
        return { op: 'unknown', run: unknownRoute };
      }
      if (third === undefined || (third === '' && fourth === undefined)) {
        if (method === 'GET') return { op: 'get', run: () => this.bundle(name, this.findVersion(name, '')) };
        if (method === 'PUT') return { op: 'import', run: (b) => this.importKey(name, b) };
        if (method === 'DELETE') return { op: 'delete', run: () => this.deleteKey(name) };
        if (method === 'PATCH') return { op: 'update', run: (b) => this.updateKey(name, '', b) };
        return { op: 'unknown', run: unknownRoute };
      }
      if (fourth === undefined) {
        if (third === 'create' && method === 'POST') return { op: 'create', run: (b) => this.createKey(name, b) };
        if (third === 'rotate' && method === 'POST') return { op: 'rotate', run: () => this.rotateKey(name) };
        if (third === 'versions' && method === 'GET') {
          return {
            op: 'listVersions',
            run: (_b, url) =>
              this.page(
                this.liveEntry(name).versions.map((v) => ({
                  kid: this.kidOf(name, v.version),
                  attributes: this.attributesJson(v.attributes),
                  ...(v.tags ? { tags: v.tags } : {}),
                })),
                url,
              ),
          };
        }
        if (method === 'GET') return { op: 'get', run: () => this.bundle(name, this.findVersion(name, third)) };
        if (method === 'PATCH') return { op: 'update', run: (b) => this.updateKey(name, third, b) };
        return { op: 'unknown', run: unknownRoute };
      }
      const ops: Record<string, 'wrapKey' | 'unwrapKey' | 'encrypt' | 'decrypt'> = {
        wrapkey: 'wrapKey',
        unwrapkey: 'unwrapKey',
        encrypt: 'encrypt',
        decrypt: 'decrypt',
      };
      const op = ops[fourth.toLowerCase()];
      if (op && method === 'POST') return { op, run: (b) => this.cryptoOp(op, name, third, b) };
      return { op: 'unknown', run: unknownRoute };
    }
    if (root === 'deletedkeys' && name) {
      if (third === undefined) {
        if (method === 'GET') return { op: 'getDeleted', run: () => this.deletedBundle(this.deletedEntry(name)) };
        if (method === 'DELETE') {
          return {
            op: 'purge',
            run: () => {
              this.deletedEntry(name);
              this.keys.delete(name);
              return undefined; // 204
            },
          };
        }
      }
      if (third === 'recover' && fourth === undefined && method === 'POST') {
        return {
          op: 'recover',
          run: () => {
            const entry = this.deletedEntry(name);
            delete entry.deleted;
            return this.bundle(name, entry.versions[entry.versions.length - 1]!);
          },
        };
      }
    }
    return { op: 'unknown', run: unknownRoute };
  }
}

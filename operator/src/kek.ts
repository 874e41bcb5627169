/**
 * Key-encryption keys (KEKs) for the envelope around each signing key.
 *
 * Azure Key Vault cannot hold the blind-signing key itself: Key Vault offers
 * only padded RSA operations (PS*, RS*, RSA-OAEP, RSA1_5), and a blind RSA
 * signature is the raw private operation m^d mod n on a blinded message. So
 * the signing key lives, AES-256-GCM encrypted, in a Kubernetes Secret, and
 * only the 32-byte data key is wrapped by the Key Vault RSA key (RSA-OAEP-256,
 * `wrapKey`). The operator needs get + wrapKey (+ unwrapKey for re-wrapping);
 * the proxy needs unwrapKey only.
 */
import { generateKeyPairSync } from 'node:crypto';
import { CryptographyClient, KeyClient, type CryptographyClientOptions } from '@azure/keyvault-keys';
import { LocalKeyEncryptionKey, ProtocolError, azureKekFingerprint, type KekRef, type KeyUnwrapper, type KeyWrapper } from '@llmtor/protocol';

/** `TokenCredential` of @azure/core-auth (DefaultAzureCredential in a cluster). */
export type TokenCredential = ConstructorParameters<typeof KeyClient>[1];

/** A fresh local key-encryption key (RSA-3072, PKCS#8 PEM) for a new local KEK Secret. */
export function newLocalKekPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 3072, publicExponent: 0x10001 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export function localKek(secretName: string, pem: string): LocalKeyEncryptionKey {
  return new LocalKeyEncryptionKey(secretName, pem);
}

export interface AzureKeyVaultOptions {
  vaultUrl: string;
  keyName: string;
  credential: TokenCredential;
  /** SDK options (tests: the stand-in's CA, `disableChallengeResourceVerification`, no retries). */
  clientOptions?: CryptographyClientOptions;
  /** Per-call time limit; a vault that does not answer must not stall the reconcile loop. */
  timeoutMs?: number;
}

/** The Key Vault RSA key, current version: wraps with it, unwraps with any version of it. */
export class AzureKeyVaultKek implements KeyUnwrapper {
  private readonly keys: KeyClient;
  private readonly clients = new Map<string, CryptographyClient>();
  private readonly timeoutMs: number;

  constructor(private readonly opts: AzureKeyVaultOptions) {
    this.keys = new KeyClient(opts.vaultUrl, opts.credential, opts.clientOptions);
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  private client(keyId: string): CryptographyClient {
    let c = this.clients.get(keyId);
    if (!c) {
      c = new CryptographyClient(keyId, this.opts.credential, this.opts.clientOptions);
      this.clients.set(keyId, c);
    }
    return c;
  }

  /** Looks up the key's current version (one GET); the wrapper uses exactly that version. */
  async current(): Promise<KeyWrapper> {
    const key = await this.keys.getKey(this.opts.keyName, { abortSignal: AbortSignal.timeout(this.timeoutMs) });
    if (!key.id) throw new Error(`Key Vault returned key ${this.opts.keyName} without an id`);
    if (key.properties.enabled === false) throw Object.assign(new Error(`Key Vault key ${key.id} is disabled`), { statusCode: 403 });
    const keyId = key.id;
    const fingerprint = azureKekFingerprint(keyId);
    const client = this.client(keyId);
    const timeoutMs = this.timeoutMs;
    return {
      ref: { provider: 'azure-keyvault', keyId, ...(fingerprint ? { fingerprint } : {}) },
      async wrapKey(dataKey: Uint8Array): Promise<Uint8Array> {
        const r = await client.wrapKey('RSA-OAEP-256', dataKey, { abortSignal: AbortSignal.timeout(timeoutMs) });
        return r.result;
      },
    };
  }

  async unwrapKey(ref: KekRef, wrapped: Uint8Array): Promise<Uint8Array> {
    if (ref.provider !== 'azure-keyvault') throw new ProtocolError('decryption_failure', `not a Key Vault key: ${ref.provider}`);
    const vault = this.opts.vaultUrl.replace(/\/+$/, '');
    // Only this vault's keys: a tampered file must not send our token to another host.
    if (!ref.keyId.startsWith(`${vault}/keys/`)) throw new ProtocolError('decryption_failure', `key ${ref.keyId} is not in vault ${vault}`);
    const r = await this.client(ref.keyId).unwrapKey('RSA-OAEP-256', wrapped, { abortSignal: AbortSignal.timeout(this.timeoutMs) });
    return r.result;
  }
}

/** Unwraps with whichever KEK a file names (a local one and/or Key Vault), e.g. while switching protection. */
export class CompositeUnwrapper implements KeyUnwrapper {
  constructor(private readonly local: KeyUnwrapper | undefined, private readonly azure: KeyUnwrapper | undefined) {}
  unwrapKey(ref: KekRef, wrapped: Uint8Array): Promise<Uint8Array> {
    const u = ref.provider === 'local' ? this.local : this.azure;
    if (!u) return Promise.reject(new ProtocolError('decryption_failure', `no ${ref.provider} key-encryption key is configured to unwrap ${ref.keyId}`));
    return u.unwrapKey(ref, wrapped);
  }
}

export type KekFailureReason = 'KeyVaultUnreachable' | 'KeyVaultForbidden' | 'KeyVaultKeyNotFound' | 'CredentialUnavailable' | 'KeyVaultError';

/** Sorts a Key Vault / identity error into a condition reason with a message a person can act on. */
export function classifyKeyVaultError(e: unknown, vaultUrl: string, keyName: string): { reason: KekFailureReason; message: string } {
  const err = e as { name?: string; statusCode?: number; code?: string; message?: string };
  const detail = (err.message ?? String(e)).split('\n')[0]!.slice(0, 300);
  if (err.name === 'CredentialUnavailableError' || err.name === 'AuthenticationError' || err.name === 'AggregateAuthenticationError') {
    return { reason: 'CredentialUnavailable', message: `no Azure credential for ${vaultUrl}: ${detail}. In a cluster, enable workload identity on the operator's ServiceAccount (azure.workload.identity/client-id) and label the pod azure.workload.identity/use=true.` };
  }
  if (err.statusCode === 401 || err.statusCode === 403) {
    return { reason: 'KeyVaultForbidden', message: `Key Vault ${vaultUrl} refused key ${keyName} (HTTP ${err.statusCode}): ${detail}. Grant the operator's identity the "Key Vault Crypto User" role (get, wrapKey, unwrapKey) and check the key is enabled.` };
  }
  if (err.statusCode === 404) {
    return { reason: 'KeyVaultKeyNotFound', message: `Key Vault ${vaultUrl} has no key ${keyName}. Create it: az keyvault key create --vault-name <vault> --name ${keyName} --kty RSA --size 3072 --ops wrapKey unwrapKey` };
  }
  if (err.statusCode === undefined || err.statusCode >= 500 || err.name === 'AbortError' || err.code === 'REQUEST_SEND_ERROR') {
    return { reason: 'KeyVaultUnreachable', message: `cannot reach Key Vault ${vaultUrl}${err.statusCode ? ` (HTTP ${err.statusCode})` : ''}: ${detail}. Check DNS, egress network policy / firewall and the vault's status; retrying with back-off, existing keys stay in place.` };
  }
  return { reason: 'KeyVaultError', message: `Key Vault ${vaultUrl} key ${keyName}: HTTP ${err.statusCode}: ${detail}` };
}

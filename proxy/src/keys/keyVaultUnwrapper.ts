/**
 * Unwraps the data keys of envelope-encrypted key files with Azure Key Vault
 * (`unwrapKey`, RSA-OAEP-256), the proxy side of the operator's envelope (see
 * operator/src/kek.ts for why the signing key itself cannot live in Key Vault).
 *
 * - Only keys of the configured vaults are used: the key id comes from a file
 *   on disk, and a tampered file must not make the proxy send its bearer token
 *   (or the wrapped key) to another host.
 * - Unwrapped data keys are cached by (key version, wrapped blob): the key
 *   directory is reloaded on every change and poll, and a Key Vault outage or
 *   throttling must not fail a reload of keys that were already open. The
 *   signing keys themselves are in memory anyway, so the cache adds no exposure.
 * - Files wrapped by a local key-encryption key go to `fallback`.
 * Credential: DefaultAzureCredential (workload identity in a cluster) unless one is given.
 */
import { DefaultAzureCredential } from '@azure/identity';
import { CryptographyClient, type CryptographyClientOptions, type KeyClient } from '@azure/keyvault-keys';
import { ProtocolError, type KekRef, type KeyUnwrapper } from '@llmtor/protocol';

/** `TokenCredential` of @azure/core-auth. */
export type TokenCredential = ConstructorParameters<typeof KeyClient>[1];

export interface KeyVaultUnwrapperOptions {
  /** Vault URLs whose keys may be used, e.g. `https://my-vault.vault.azure.net`. */
  vaultUrls: string[];
  credential?: TokenCredential;
  /** SDK options (tests: a CA, `disableChallengeResourceVerification`, retries). */
  clientOptions?: CryptographyClientOptions;
  /** Per-call time limit (default 10 s). */
  timeoutMs?: number;
  /** Unwrapper for files whose KEK is not in Key Vault (a local KEK). */
  fallback?: KeyUnwrapper;
  /** Data keys kept in memory (default 1024). */
  cacheSize?: number;
}

const KEY_PATH = /^\/keys\/[0-9A-Za-z-]{1,127}\/[0-9A-Za-z]{1,64}$/;

export class KeyVaultUnwrapper implements KeyUnwrapper {
  private readonly vaults: Set<string>;
  private readonly clients = new Map<string, CryptographyClient>();
  private readonly cache = new Map<string, Uint8Array>();
  private credential: TokenCredential | undefined;
  private readonly timeoutMs: number;
  private readonly cacheSize: number;

  constructor(private readonly opts: KeyVaultUnwrapperOptions) {
    this.vaults = new Set(opts.vaultUrls.map((u) => new URL(u).origin));
    this.credential = opts.credential;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.cacheSize = opts.cacheSize ?? 1024;
  }

  async unwrapKey(ref: KekRef, wrapped: Uint8Array): Promise<Uint8Array> {
    if (ref.provider !== 'azure-keyvault') {
      if (this.opts.fallback) return this.opts.fallback.unwrapKey(ref, wrapped);
      throw new ProtocolError('decryption_failure', `key file is wrapped by a ${ref.provider} key-encryption key (${ref.keyId}), but only Azure Key Vault is configured`);
    }
    let url: URL;
    try {
      url = new URL(ref.keyId);
    } catch {
      throw new ProtocolError('decryption_failure', `Key Vault key id ${JSON.stringify(ref.keyId)} is not a URL`);
    }
    if (url.protocol !== 'https:' || !this.vaults.has(url.origin) || !KEY_PATH.test(url.pathname) || url.search || url.hash) {
      throw new ProtocolError('decryption_failure', `Key Vault key ${ref.keyId} is not a versioned key of a configured vault (${[...this.vaults].join(', ')}); add the vault to the configuration if it is yours`);
    }
    const keyId = `${url.origin}${url.pathname}`;
    const cacheKey = `${keyId}|${Buffer.from(wrapped).toString('base64')}`;
    const hit = this.cache.get(cacheKey);
    if (hit) return new Uint8Array(hit); // a copy: openSigningKeyFile zeroes what it gets
    let client = this.clients.get(keyId);
    if (!client) {
      this.credential ??= new DefaultAzureCredential();
      client = new CryptographyClient(keyId, this.credential, this.opts.clientOptions);
      this.clients.set(keyId, client);
    }
    let dataKey: Uint8Array;
    try {
      dataKey = (await client.unwrapKey('RSA-OAEP-256', wrapped, { abortSignal: AbortSignal.timeout(this.timeoutMs) })).result;
    } catch (e) {
      const err = e as { statusCode?: number; name?: string; message?: string };
      const why = err.statusCode === 401 || err.statusCode === 403
        ? `access denied (HTTP ${err.statusCode}): grant this pod's identity "Key Vault Crypto User" (unwrapKey) on the key`
        : err.statusCode !== undefined
          ? `HTTP ${err.statusCode}: ${(err.message ?? '').split('\n')[0]}`
          : `unreachable (${err.name ?? 'error'}: ${(err.message ?? String(e)).split('\n')[0]}); check egress to ${url.host} and the Azure credential`;
      throw new ProtocolError('decryption_failure', `Key Vault could not unwrap a data key with ${keyId}: ${why}`);
    }
    if (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(cacheKey, new Uint8Array(dataKey));
    return dataKey;
  }
}

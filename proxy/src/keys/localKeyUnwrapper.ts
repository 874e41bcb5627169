/** The local KeyUnwrapper: an RSA key-encryption key read from a PEM file (Azure Key Vault: keyVaultUnwrapper.ts). */
import { readFileSync } from 'node:fs';
import { LocalKeyEncryptionKey, type KeyUnwrapper } from '@llmtor/protocol';

export function localKeyUnwrapper(pemFile: string, name: string): KeyUnwrapper {
  return new LocalKeyEncryptionKey(name, readFileSync(pemFile, 'utf8'));
}

/** Writes operator-style key files (protocol/src/keyFile.ts format) for tests. */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKeyEncryptionKey, sealSigningKey, type KeyEntry, type KeyWrapper } from '@llmtor/protocol';

export function tempDir(prefix = 'llmtor-keys-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function writeKeyFile(dir: string, entry: KeyEntry, privateKey: KeyObject, wrapper?: KeyWrapper): Promise<string> {
  const { keyId: _k, publicKey: _p, ...meta } = entry.meta;
  const file = await sealSigningKey(privateKey, meta, wrapper);
  const path = join(dir, `${file.keyId}.json`);
  writeFileSync(path, JSON.stringify(file, null, 2));
  return path;
}

/** A local key-encryption key and its PEM file (what LLMTOR_KEK_FILE points at). */
export function localKek(dir: string, name = 'test-kek'): { kek: LocalKeyEncryptionKey; pemFile: string; name: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const pemFile = join(dir, 'kek.pem');
  writeFileSync(pemFile, pem, { mode: 0o600 });
  return { kek: new LocalKeyEncryptionKey(name, pem), pemFile, name };
}

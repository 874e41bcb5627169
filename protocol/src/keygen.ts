import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

const gen = promisify(generateKeyPair);

/** A fresh RSA-2048 signing key (rsaEncryption, e = 65537), for type 0x0002. */
export async function generateSigningKey(modulusLength = 2048): Promise<KeyObject> {
  const { privateKey } = await gen('rsa', { modulusLength, publicExponent: 0x10001 });
  return privateKey;
}

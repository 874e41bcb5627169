import { generateKeyPairSync, type KeyObject } from 'node:crypto';

/** Keys are slow to generate; tests share a few, made once per process. */
const cache: KeyObject[] = [];
export function testKey(i = 0): KeyObject {
  while (cache.length <= i) cache.push(generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 }).privateKey);
  return cache[i]!;
}

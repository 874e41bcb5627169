import { readFileSync } from 'node:fs';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';

/** Keys are slow to generate; tests share a few, made once per process. */
const cache: KeyObject[] = [];
export function testKey(i = 0): KeyObject {
  while (cache.length <= i) cache.push(generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 }).privateKey);
  return cache[i]!;
}

export interface GenericBatchVector {
  vector: number;
  issuance: { type: string; skS: string; pkS: string; token_challenge: string; nonce: string; blind: string; token: string }[];
  token_request: string;
  token_response: string;
}
/** draft-ietf-privacypass-batched-tokens-08 Appendix A.4, the type 0x0002 vectors (2 and 4). */
export const genericBatchVectors = (
  JSON.parse(readFileSync(new URL('../../test/vectors/batched-tokens-generic-type2.json', import.meta.url), 'utf8')) as { vectors: GenericBatchVector[] }
).vectors;

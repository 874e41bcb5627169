/**
 * The answer kept for a retry of the same request with the same tokens, as
 * plaintext before encryption: kind (1 byte: 'j' JSON, 's' SSE transcript,
 * 'r' moderation refusal) | HTTP status (2 bytes) | body bytes.
 */
export type AnswerKind = 'json' | 'sse' | 'refusal';

export interface CachedAnswer {
  kind: AnswerKind;
  status: number;
  body: Buffer;
}

const CODE: Record<AnswerKind, number> = { json: 0x6a, sse: 0x73, refusal: 0x72 };

export function encodeAnswer(a: CachedAnswer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = CODE[a.kind];
  head.writeUInt16BE(a.status, 1);
  return Buffer.concat([head, a.body]);
}

export function decodeAnswer(b: Buffer): CachedAnswer | undefined {
  if (b.length < 3) return undefined;
  const kind = (Object.keys(CODE) as AnswerKind[]).find((k) => CODE[k] === b[0]);
  if (!kind) return undefined;
  return { kind, status: b.readUInt16BE(1), body: b.subarray(3) };
}

/** Reads a request body up to a limit without trusting Content-Length. */
import type { IncomingMessage } from 'node:http';
import type { RedemptionError } from './errors.js';

export async function readBody(req: IncomingMessage, limit: number, tooLarge: () => RedemptionError): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of req) {
    const b = c as Buffer;
    total += b.length;
    if (total > limit) throw tooLarge();
    chunks.push(b);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/** Reads a request body up to a limit without trusting Content-Length. */
import type { IncomingMessage } from 'node:http';
import { RedemptionError } from './errors.js';

export async function readBody(req: IncomingMessage, limit: number, tooLarge: () => RedemptionError): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const c of req) {
      const b = c as Buffer;
      total += b.length;
      if (total > limit) throw tooLarge();
      chunks.push(b);
    }
  } catch (e) {
    if (e instanceof RedemptionError) throw e;
    // The stream failed: the client closed the connection mid-body. Not a server error.
    throw new RedemptionError('client_closed_request', 'the connection closed before the request body was complete; nothing was spent');
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/** Worker thread body for SignerPool: holds BlindSigners by key id, signs batches. */
import { parentPort } from 'node:worker_threads';
import { BlindSigner } from './signer.js';
import { ProtocolError } from './errors.js';

type Msg =
  | { op: 'setKeys'; seq: number; keys: { keyId: string; pkcs8: Uint8Array }[] }
  | { op: 'sign'; seq: number; keyId: string; msgs: Uint8Array[] };

const signers = new Map<string, BlindSigner>();

parentPort!.on('message', (m: Msg) => {
  if (m.op === 'setKeys') {
    // Build the whole new set first: a bad key leaves the old set in place.
    let next: Map<string, BlindSigner>;
    try {
      next = new Map(m.keys.map((k) => [k.keyId, new BlindSigner(k.pkcs8)] as const));
    } catch (e) {
      parentPort!.postMessage({ seq: m.seq, ok: false, code: e instanceof ProtocolError ? e.code : 'unsupported_key', message: e instanceof Error ? e.message : 'bad key' });
      return;
    }
    signers.clear();
    for (const [id, s] of next) signers.set(id, s);
    parentPort!.postMessage({ seq: m.seq, ok: true });
    return;
  }
  const signer = signers.get(m.keyId);
  if (!signer) {
    parentPort!.postMessage({ seq: m.seq, ok: false, code: 'unknown_key_id', message: 'signing key not loaded in worker' });
    return;
  }
  const out: (Uint8Array | { code: string; message: string })[] = [];
  for (const msg of m.msgs) {
    try {
      out.push(signer.sign(msg));
    } catch (e) {
      out.push(e instanceof ProtocolError ? { code: e.code, message: e.message } : { code: 'signing_failure', message: 'unexpected signer error' });
    }
  }
  parentPort!.postMessage({ seq: m.seq, ok: true, out });
});

/**
 * A worker_threads pool of native blind signers so one process uses every core.
 * A batch is split into one chunk per worker. Per-message failures come back as
 * ProtocolErrors in the result array (so the caller can refund exactly those).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ProtocolError, type ProtocolErrorCode } from './errors.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class SignerPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private next = 0;
  private closed = false;
  private referenced = false;

  constructor(size: number = availableParallelism()) {
    for (let i = 0; i < Math.max(1, size); i++) {
      const w = new Worker(new URL('./signerWorker.js', import.meta.url));
      w.on('message', (m: { seq: number; ok: boolean; code?: ProtocolErrorCode; message?: string; out?: unknown }) => {
        const p = this.pending.get(m.seq);
        if (!p) return;
        this.pending.delete(m.seq);
        this.refWhileBusy();
        if (m.ok) p.resolve(m.out);
        else p.reject(new ProtocolError(m.code ?? 'signing_failure', m.message ?? 'worker error'));
      });
      w.on('error', (e) => this.failAll(e));
      w.unref();
      this.workers.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private call(w: Worker, msg: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new ProtocolError('signing_failure', 'signer pool is closed'));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.refWhileBusy();
      w.postMessage({ ...msg, seq });
    });
  }

  /** Idle workers must not keep the process alive; busy ones must (a pending promise does not). */
  private refWhileBusy(): void {
    const busy = this.pending.size > 0;
    if (busy === this.referenced) return;
    this.referenced = busy;
    for (const w of this.workers) if (busy) w.ref();
    else w.unref();
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(new ProtocolError('signing_failure', `signer worker failed: ${e.message}`));
    this.pending.clear();
    this.refWhileBusy();
  }

  /** Replaces the keys every worker holds (PKCS#8 DER of rsaEncryption keys, by hex key id). */
  async setKeys(keys: { keyId: string; pkcs8: Uint8Array }[]): Promise<void> {
    await Promise.all(this.workers.map((w) => this.call(w, { op: 'setKeys', keys })));
  }

  /** Signs each blinded message; an element is a ProtocolError where that one failed. */
  async signBatch(keyId: string, msgs: readonly Uint8Array[]): Promise<(Uint8Array | ProtocolError)[]> {
    if (msgs.length === 0) return [];
    const chunks = Math.min(this.workers.length, msgs.length);
    const per = Math.ceil(msgs.length / chunks);
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < msgs.length; i += per) {
      const w = this.workers[this.next++ % this.workers.length]!;
      jobs.push(this.call(w, { op: 'sign', keyId, msgs: msgs.slice(i, i + per) }));
    }
    const parts = (await Promise.all(jobs)) as (Uint8Array | { code: ProtocolErrorCode; message: string })[][];
    return parts.flat().map((r) => (r instanceof Uint8Array ? r : new ProtocolError(r.code, r.message)));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new Error('closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

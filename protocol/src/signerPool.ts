/**
 * A worker_threads pool of native blind signers so one process uses every core.
 * A batch is split into one chunk per worker. Per-message failures come back as
 * ProtocolErrors in the result array (so the caller can refund exactly those).
 *
 * The pool survives its workers: a worker that dies fails only the calls it was
 * running and is replaced (with the current keys); new keys are checked in this
 * thread before any worker sees them, and a worker that refuses them rolls every
 * worker back to the previous keys, so all workers always hold the same set.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ProtocolError, type ProtocolErrorCode } from './errors.js';
import { BlindSigner } from './signer.js';

type Pending = { worker: Worker; resolve: (v: unknown) => void; reject: (e: Error) => void };
type KeyMaterial = { keyId: string; pkcs8: Uint8Array };

export class SignerPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private keys: KeyMaterial[] = [];
  private seq = 0;
  private next = 0;
  private closed = false;
  private referenced = false;
  /** Workers replaced after dying (for metrics and tests). */
  respawns = 0;

  constructor(size: number = availableParallelism()) {
    for (let i = 0; i < Math.max(1, size); i++) this.workers.push(this.spawn());
  }

  get size(): number {
    return this.workers.length;
  }

  private spawn(): Worker {
    const w = new Worker(new URL('./signerWorker.js', import.meta.url));
    w.on('message', (m: { seq: number; ok: boolean; code?: ProtocolErrorCode; message?: string; out?: unknown }) => {
      const p = this.pending.get(m.seq);
      if (!p) return;
      this.pending.delete(m.seq);
      this.refWhileBusy();
      if (m.ok) p.resolve(m.out);
      else p.reject(new ProtocolError(m.code ?? 'signing_failure', m.message ?? 'worker error'));
    });
    w.on('error', (e) => this.failWorker(w, e));
    w.on('exit', () => {
      this.failWorker(w, new Error('signer worker exited'));
      if (this.closed) return;
      const i = this.workers.indexOf(w);
      if (i < 0) return;
      const fresh = this.spawn();
      this.workers[i] = fresh;
      this.respawns++;
      if (this.keys.length > 0) this.call(fresh, { op: 'setKeys', keys: this.keys }).catch(() => undefined);
    });
    if (!this.referenced) w.unref();
    return w;
  }

  private call(w: Worker, msg: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new ProtocolError('signing_failure', 'signer pool is closed'));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { worker: w, resolve, reject });
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

  private failWorker(w: Worker, e: Error): void {
    for (const [seq, p] of this.pending) {
      if (p.worker !== w) continue;
      this.pending.delete(seq);
      p.reject(new ProtocolError('signing_failure', `signer worker failed: ${e.message}`));
    }
    this.refWhileBusy();
  }

  /** Replaces the keys every worker holds (PKCS#8 DER of rsaEncryption keys, by hex key id). */
  async setKeys(keys: KeyMaterial[]): Promise<void> {
    for (const k of keys) new BlindSigner(k.pkcs8); // throws a ProtocolError for an unusable key, before any worker sees it
    const previous = this.keys;
    try {
      await Promise.all(this.workers.map((w) => this.call(w, { op: 'setKeys', keys })));
      this.keys = keys;
    } catch (e) {
      await Promise.allSettled(this.workers.map((w) => this.call(w, { op: 'setKeys', keys: previous })));
      throw e;
    }
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

  /** Stops one worker as if it had crashed (operational drills and tests); it is replaced. */
  async killWorker(index: number): Promise<void> {
    const w = this.workers[index];
    if (w) await w.terminate();
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.workers];
    for (const w of all) this.failWorker(w, new Error('closed'));
    await Promise.all(all.map((w) => w.terminate()));
  }
}

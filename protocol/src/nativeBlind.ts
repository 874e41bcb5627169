/**
 * Fast client side of issuance (type 0x0002): the same interface and the same
 * bytes as `TokenClient` (blindrsa-ts), with the RSA work done natively
 * (`nativeBlindCore.ts`). Batches run in a worker thread so a refill does not
 * hold the caller's event loop (the VS Code extension host), with one blinded
 * inversion per batch.
 *
 * Pending state is the same `PendingToken` (base64url token input and r^-1), so
 * a batch blinded by either client can be finalized by the other.
 */
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { decodeBatchTokenResponse, encodeBatchTokenRequest } from './batch.js';
import { fromBase64Url, toBase64Url } from './bytes.js';
import { challengeDigest, type TokenChallenge } from './challenge.js';
import { NK, TOKEN_INPUT_LENGTH, TOKEN_TYPE_BLIND_RSA } from './constants.js';
import { ProtocolError } from './errors.js';
import { publicKeyFromPssSpki, tokenKeyId, truncatedKeyId } from './keyId.js';
import { blindCore, finalizeCore, type BlindCoreInput, type BlindCoreOutput } from './nativeBlindCore.js';
import { decodeTokenInput, encodeToken, encodeTokenInput } from './token.js';
import type { TokenRequest, TokenResponse } from './tokenRequest.js';

/** What the client keeps between sending a TokenRequest and receiving its TokenResponse. */
export interface NativePendingToken {
  /** base64url token input (type | nonce | challenge_digest | token_key_id). */
  tokenInput: string;
  /** base64url blinding inverse. Secret: it unlinks the token from the request. */
  inv: string;
}

/** Batches at least this large go to a worker thread; smaller ones are cheaper in-line. */
const WORKER_THRESHOLD = 8;

// The worker's whole program: the two self-contained core functions, as text.
const WORKER_SOURCE = `'use strict';
const { parentPort } = require('node:worker_threads');
const blindCore = ${blindCore.toString()};
const finalizeCore = ${finalizeCore.toString()};
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ seq: m.seq, ok: true, out: m.op === 'blind' ? blindCore(m.input) : finalizeCore(m.input) });
  } catch (e) {
    parentPort.postMessage({ seq: m.seq, ok: false, message: e && e.message ? String(e.message) : 'worker error' });
  }
});`;

type Waiter = { resolve: (v: unknown) => void; reject: (e: Error) => void };
let shared: { worker: Worker; seq: number; waiting: Map<number, Waiter> } | undefined;

/**
 * Runs one core call in a resident worker thread, started on first use. It is
 * unreferenced while idle (it never keeps a process alive) and referenced while
 * a call is in flight (so the process waits for the answer).
 */
function inWorker<T>(op: 'blind' | 'finalize', input: unknown): Promise<T> {
  if (!shared) {
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    const state = { worker, seq: 0, waiting: new Map<number, Waiter>() };
    const failAll = (e: Error) => {
      if (shared === state) shared = undefined;
      for (const w of state.waiting.values()) w.reject(e);
      state.waiting.clear();
    };
    worker.on('message', (m: { seq: number; ok: boolean; out?: unknown; message?: string }) => {
      const w = state.waiting.get(m.seq);
      if (!w) return;
      state.waiting.delete(m.seq);
      if (state.waiting.size === 0) worker.unref();
      if (m.ok) w.resolve(m.out);
      else w.reject(new ProtocolError('malformed', `blinding worker: ${m.message ?? 'failed'}`));
    });
    worker.on('error', (e) => failAll(e));
    worker.on('exit', () => failAll(new Error('blinding worker exited')));
    worker.unref();
    shared = state;
  }
  const state = shared;
  return new Promise<T>((resolve, reject) => {
    const seq = ++state.seq;
    state.waiting.set(seq, { resolve: resolve as (v: unknown) => void, reject });
    state.worker.ref();
    state.worker.postMessage({ seq, op, input });
  });
}

/** A batch answer with another item count than the request: resending the same request cannot help. */
export class BatchSizeMismatchError extends ProtocolError {
  constructor(readonly answered: number, readonly requested: number) {
    super('malformed', `the issuer answered ${answered} items for ${requested} requests`);
    this.name = 'BatchSizeMismatchError';
  }
}

export class NativeTokenClient {
  readonly keyId: Uint8Array;
  readonly spki: Uint8Array;
  private readonly pkcs1: Uint8Array;

  private constructor(spki: Uint8Array, pkcs1: Uint8Array) {
    this.spki = spki;
    this.keyId = tokenKeyId(spki);
    this.pkcs1 = pkcs1;
  }

  /** From the directory's token-key (RSASSA-PSS SPKI, DER or base64url). Checks it is an RSA-2048 PSS key. */
  static forKey(spki: Uint8Array | string): Promise<NativeTokenClient> {
    const der = typeof spki === 'string' ? fromBase64Url(spki, 'token-key') : spki;
    const pkcs1 = new Uint8Array(publicKeyFromPssSpki(der).export({ type: 'pkcs1', format: 'der' }));
    return Promise.resolve(new NativeTokenClient(der, pkcs1));
  }

  /**
   * One TokenRequest. `challenge` is a TokenChallenge or its 32-byte digest.
   * `opts.nonce`, `opts.salt` and `opts.r` exist for test vectors only.
   */
  async createRequest(
    challenge: TokenChallenge | Uint8Array,
    opts: { nonce?: Uint8Array; salt?: Uint8Array; r?: Uint8Array } = {},
  ): Promise<{ request: TokenRequest; pending: NativePendingToken }> {
    const digest = challenge instanceof Uint8Array ? challenge : challengeDigest(challenge);
    const input = this.tokenInput(digest, opts.nonce);
    const out = blindCore({ pkcs1: this.pkcs1, msgs: [input], ...(opts.salt ? { salts: [opts.salt] } : {}), ...(opts.r ? { rs: [opts.r] } : {}) });
    return this.made(input, out, 0);
  }

  /** `count` TokenRequests with fresh nonces, blinded together (in a worker thread from WORKER_THRESHOLD on). */
  async createRequests(challenge: TokenChallenge | Uint8Array, count: number): Promise<{ request: TokenRequest; pending: NativePendingToken }[]> {
    if (!Number.isInteger(count) || count < 1) throw new ProtocolError('malformed', 'count must be a positive integer');
    const digest = challenge instanceof Uint8Array ? challenge : challengeDigest(challenge);
    const inputs = Array.from({ length: count }, () => this.tokenInput(digest));
    const coreInput: BlindCoreInput = { pkcs1: this.pkcs1, msgs: inputs };
    const out = count >= WORKER_THRESHOLD ? await inWorker<BlindCoreOutput>('blind', coreInput) : blindCore(coreInput);
    return inputs.map((input, i) => this.made(input, out, i));
  }

  /**
   * Blind step of batched issuance: `count` requests framed as one generic batch
   * request body (draft-ietf-privacypass-batched-tokens §6.1), and the state to
   * keep (persist it before sending: the same body is resent after a lost answer).
   */
  async createBatch(challenge: TokenChallenge | Uint8Array, count: number): Promise<{ body: Uint8Array; pending: NativePendingToken[] }> {
    const made = await this.createRequests(challenge, count);
    return { body: encodeBatchTokenRequest(made.map((m) => m.request)), pending: made.map((m) => m.pending) };
  }

  /**
   * Finalize step of batched issuance: decodes a generic batch response body and
   * finalizes every present item; null where the issuer refused that request. An
   * answer with another item count, or a signature that does not verify, throws.
   */
  async finalizeBatch(pending: readonly NativePendingToken[], body: Uint8Array): Promise<(Uint8Array | null)[]> {
    const responses = decodeBatchTokenResponse(body);
    if (responses.length !== pending.length) throw new BatchSizeMismatchError(responses.length, pending.length);
    const present = responses.flatMap((r, i) => (r ? [i] : []));
    const tokens = present.length ? await this.finalizeMany(present.map((i) => pending[i]!), present.map((i) => responses[i]!)) : [];
    const out: (Uint8Array | null)[] = responses.map(() => null);
    present.forEach((i, j) => (out[i] = tokens[j]!));
    return out;
  }

  /** Unblinds and checks the signature (natively). Returns the encoded 354-byte token. */
  async finalize(pending: NativePendingToken, response: TokenResponse): Promise<Uint8Array> {
    const [token] = await this.finalizeMany([pending], [response]);
    return token!;
  }

  /** `finalize` for a batch; throws on the first response that does not give a valid token. */
  async finalizeMany(pending: readonly NativePendingToken[], responses: readonly TokenResponse[]): Promise<Uint8Array[]> {
    if (pending.length !== responses.length) throw new ProtocolError('malformed', 'one response per pending token');
    const items = pending.map((p, i) => {
      if (responses[i]!.blindSig.length !== NK) throw new ProtocolError('wrong_length', `blind_sig must be ${NK} bytes`);
      return { msg: fromBase64Url(p.tokenInput, 'tokenInput'), blindSig: responses[i]!.blindSig, inv: fromBase64Url(p.inv, 'inv') };
    });
    const sigs = items.length >= WORKER_THRESHOLD ? await inWorker<(Uint8Array | null)[]>('finalize', { pkcs1: this.pkcs1, items }) : finalizeCore({ pkcs1: this.pkcs1, items });
    return sigs.map((sig, i) => {
      if (!sig) throw new ProtocolError('bad_signature', 'issuer returned a blind signature that does not finalize into a valid token');
      const input = items[i]!.msg;
      return encodeToken({ ...decodeTokenInput(input), authenticator: sig });
    });
  }

  private tokenInput(digest: Uint8Array, nonce?: Uint8Array): Uint8Array {
    return encodeTokenInput({ tokenType: TOKEN_TYPE_BLIND_RSA, nonce: nonce ?? new Uint8Array(randomBytes(32)), challengeDigest: digest, tokenKeyId: this.keyId });
  }

  private made(input: Uint8Array, out: BlindCoreOutput, i: number): { request: TokenRequest; pending: NativePendingToken } {
    if (input.length !== TOKEN_INPUT_LENGTH) throw new ProtocolError('wrong_length', 'token input');
    return {
      request: { tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: truncatedKeyId(this.keyId), blindedMsg: new Uint8Array(out.blindedMsgs[i]!) },
      pending: { tokenInput: toBase64Url(input), inv: toBase64Url(out.invs[i]!) },
    };
  }
}

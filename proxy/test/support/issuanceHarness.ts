/** Test harness of the issuance side: a proxy on a real Redis (or the in-process store), shared test keys, helpers. */
import { constants, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { decodeTokenResponse, encodeTokenRequest, MEDIA_TYPE_TOKEN_REQUEST, TOKEN_TYPE_BLIND_RSA, type KeyEntry } from '@llmtor/protocol';
import { loadConfig, type ProxyConfigInput } from '../../src/config.js';
import { generateEphemeralKeys } from '../../src/keys/ephemeralKeySource.js';
import type { KeySource, LoadedKeys } from '../../src/keys/keySource.js';
import { startProxy, type ProxyOverrides, type RunningProxy } from '../../src/stack.js';
import type { IssuanceStore } from '../../src/store/issuanceStore.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789-abcdefghijklmnop';
export const PEPPER = 'test-pepper-0123456789-abcdefghijklmnopqrstuvwxyz';

let shared: Promise<{ entries: KeyEntry[]; privateKeys: Map<string, KeyObject> }> | undefined;

/** One set of keys (credit, permanent, transient of this month) per test process: RSA keygen is slow. */
export function sharedTestKeys(): Promise<{ entries: KeyEntry[]; privateKeys: Map<string, KeyObject> }> {
  shared ??= generateEphemeralKeys(Date.now());
  return shared;
}

export class StaticKeySource implements KeySource {
  readonly description = 'test keys';
  constructor(private keys: () => Promise<Omit<LoadedKeys, 'problems'>>) {}
  async load(): Promise<LoadedKeys> {
    const k = await this.keys();
    return { entries: k.entries, privateKeys: k.privateKeys, problems: [] };
  }
}

export function keyOf(entries: KeyEntry[], purpose: string): KeyEntry {
  const e = entries.find((x) => x.meta.purpose === purpose);
  if (!e) throw new Error(`no ${purpose} key`);
  return e;
}

export interface TestProxy extends RunningProxy {
  keys2: { entries: KeyEntry[]; privateKeys: Map<string, KeyObject> };
}

export async function startIssuanceProxy(o: { redisUrl?: string; env?: NodeJS.ProcessEnv; config?: ProxyConfigInput; overrides?: ProxyOverrides } = {}): Promise<TestProxy> {
  const keys = await sharedTestKeys();
  const config = loadConfig({
    env: o.env ?? {},
    overrides: {
      roles: ['issuance'],
      logLevel: 'silent',
      adminToken: ADMIN_TOKEN,
      ...o.config,
      listen: { host: '127.0.0.1', port: 0 },
      accounts: { pepper: PEPPER, ...o.config?.accounts },
      ...(o.redisUrl ? { redis: { issuance: { url: o.redisUrl } } } : {}),
      issuance: { requestsPerMinute: 1_000_000, signerThreads: 2, ...o.config?.issuance },
    },
  });
  const proxy = await startProxy(config, { keySource: new StaticKeySource(async () => keys), ...o.overrides });
  return Object.assign(proxy, { keys2: keys });
}

/** A syntactically valid blinded message below any 2048-bit modulus (top bit clear): the server cannot tell it from a real one. */
export function randomBlindedMsg(): Uint8Array {
  const m = new Uint8Array(randomBytes(256));
  m[0] = m[0]! & 0x7f;
  return m;
}

/** sig^e mod n == msg: the blind signature is a real RSA signature of the message under `key`. */
export function blindSignatureValid(key: KeyEntry, msg: Uint8Array, sig: Uint8Array): boolean {
  const back = publicEncrypt({ key: key.publicKey, padding: constants.RSA_NO_PADDING }, sig);
  return Buffer.compare(back, Buffer.from(msg)) === 0;
}

export async function accountRef(url: string, accountKey: string): Promise<string> {
  const r = await fetch(`${url}/v1/account`, { headers: { authorization: `Bearer ${accountKey}` } });
  return ((await r.json()) as { account_ref: string }).account_ref;
}

/** n concurrent single-token requests (distinct Idempotency-Keys) spread over `urls`. */
export async function hammer(entries: KeyEntry[], urls: string[], accountKey: string, n: number) {
  const credit = keyOf(entries, 'credit');
  const results = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const msg = randomBlindedMsg();
      const res = await fetch(`${urls[i % urls.length]}/token-request`, {
        method: 'POST',
        headers: { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_TOKEN_REQUEST, 'idempotency-key': `req-${i}` },
        body: encodeTokenRequest({ tokenType: TOKEN_TYPE_BLIND_RSA, truncatedTokenKeyId: credit.truncatedId, blindedMsg: msg }),
      });
      const body = new Uint8Array(await res.arrayBuffer());
      return { status: res.status, valid: res.status === 200 && blindSignatureValid(credit, msg, decodeTokenResponse(body).blindSig), body };
    }),
  );
  return results;
}

/**
 * A paid purchase of `credits` on the account, through the store's own checkout and payment steps
 * (what the Stripe webhook does): abuse tokens need one.
 */
export async function recordPaidPurchase(store: IssuanceStore, accountId: string, credits: number, now = Date.now()): Promise<{ sessionId: string; paymentIntent: string }> {
  const sessionId = `cs_test_${randomBytes(8).toString('hex')}`;
  const paymentIntent = `pi_test_${randomBytes(8).toString('hex')}`;
  await store.recordCheckout(accountId, { sessionId, packId: 'small', credits, amount: credits, currency: 'eur', createdAt: now, status: 'pending' });
  const r = await store.applyPayment(accountId, { sessionId, eventId: `evt_${randomBytes(8).toString('hex')}`, paymentIntent, now, eventTtlMs: 86_400_000 });
  if (r.outcome !== 'credited') throw new Error(`payment not credited: ${r.outcome}`);
  return { sessionId, paymentIntent };
}

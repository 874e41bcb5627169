/**
 * A small client of the issuance-side HTTP API (what the VS Code extension
 * does, minus the wallet): account, admin grant, directory, batched issuance
 * with real blinding (NativeTokenClient) and finalization. Used by the demo, tests
 * and the benchmark.
 */
import {
  ACCOUNT_PATH,
  defaultChallenge,
  encodeBatchTokenRequest,
  ISSUER_DIRECTORY_PATH,
  MEDIA_TYPE_BATCH_REQUEST,
  parseAccountView,
  parseIssuerDirectory,
  type AccountView,
  type IssuerDirectory,
  type KeyPurpose,
  type TokenRequest,
} from '@llmtor/protocol';
import { NativeTokenClient as TokenClient, type NativePendingToken as PendingToken } from '@llmtor/protocol';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`HTTP ${status}: ${body.slice(0, 300)}`);
  }
}

async function json<T>(res: Response): Promise<T> {
  const text = await res.text();
  if (!res.ok) throw new HttpError(res.status, text);
  return JSON.parse(text) as T;
}

export async function createAccount(baseUrl: string): Promise<string> {
  const r = await json<{ account_key: string }>(await fetch(`${baseUrl}/v1/accounts`, { method: 'POST' }));
  return r.account_key;
}

export async function adminGrant(baseUrl: string, adminToken: string, accountKey: string, credits: number): Promise<number> {
  const r = await json<{ balance: number }>(
    await fetch(`${baseUrl}/v1/admin/grants`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ account_key: accountKey, credits, reason: 'demo/test grant' }),
    }),
  );
  return r.balance;
}

export type { AccountView };

export async function getAccount(baseUrl: string, accountKey: string): Promise<AccountView> {
  return parseAccountView(await json<unknown>(await fetch(`${baseUrl}${ACCOUNT_PATH}`, { headers: { authorization: `Bearer ${accountKey}` } })));
}

export async function fetchDirectory(baseUrl: string): Promise<IssuerDirectory> {
  const res = await fetch(`${baseUrl}${ISSUER_DIRECTORY_PATH}`);
  if (!res.ok) throw new HttpError(res.status, await res.text());
  return parseIssuerDirectory(await res.text());
}

export async function clientFor(dir: IssuerDirectory, purpose: KeyPurpose): Promise<TokenClient> {
  const key = dir['token-keys'].find((x) => x.purpose === purpose);
  if (!key) throw new Error(`the directory lists no ${purpose} key`);
  return TokenClient.forKey(key['token-key']);
}

export async function blindRequests(client: TokenClient, issuerName: string, n: number): Promise<{ requests: TokenRequest[]; pending: PendingToken[] }> {
  const made = await client.createRequests(defaultChallenge(issuerName), n);
  return { requests: made.map((m) => m.request), pending: made.map((m) => m.pending) };
}

/** POSTs one batch body; returns the response bytes (throws HttpError on a non-2xx). */
async function postBatchBody(baseUrl: string, accountKey: string, body: Uint8Array, idempotencyKey?: string, path = '/token-request'): Promise<Uint8Array> {
  const headers: Record<string, string> = { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_BATCH_REQUEST };
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  const res = await fetch(`${baseUrl}${path}`, { method: 'POST', headers, body });
  const buf = new Uint8Array(await res.arrayBuffer());
  if (!res.ok) throw new HttpError(res.status, Buffer.from(buf).toString('utf8'));
  return buf;
}

/** POSTs one batch of requests; returns the response bytes (throws HttpError on a non-2xx). */
export async function postBatch(baseUrl: string, accountKey: string, requests: readonly TokenRequest[], idempotencyKey?: string, path = '/token-request'): Promise<Uint8Array> {
  return postBatchBody(baseUrl, accountKey, encodeBatchTokenRequest(requests), idempotencyKey, path);
}

/** Blind, issue in one batch, finalize (the client's batch helpers): returns the 354-byte tokens the issuer did not refuse. */
export async function issueTokens(baseUrl: string, accountKey: string, client: TokenClient, issuerName: string, n: number): Promise<Uint8Array[]> {
  const { body, pending } = await client.createBatch(defaultChallenge(issuerName), n);
  const tokens = await client.finalizeBatch(pending, await postBatchBody(baseUrl, accountKey, body));
  return tokens.filter((t): t is Uint8Array => t !== null);
}

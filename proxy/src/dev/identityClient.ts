/**
 * A small client of the identity-side HTTP API (what the VS Code extension
 * does, minus the wallet): account, admin grant, directory, batched issuance
 * with real blinding (NativeTokenClient) and finalization. Used by the demo, tests
 * and the benchmark.
 */
import {
  decodeBatchTokenResponse,
  defaultChallenge,
  encodeBatchTokenRequest,
  ISSUER_DIRECTORY_PATH,
  MEDIA_TYPE_BATCH_REQUEST,
  parseIssuerDirectory,
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

export interface AccountView {
  account_ref: string;
  balance: number;
  purchases: { session_id: string; status: string; credits: number; reversed_credits: number }[];
  abuse_tokens: { permanent: { issued: number; limit: number }; transient: { epoch: string; issued: number; limit: number } };
}

export async function getAccount(baseUrl: string, accountKey: string): Promise<AccountView> {
  return json<AccountView>(await fetch(`${baseUrl}/v1/account`, { headers: { authorization: `Bearer ${accountKey}` } }));
}

export async function fetchDirectory(baseUrl: string): Promise<IssuerDirectory> {
  const res = await fetch(`${baseUrl}${ISSUER_DIRECTORY_PATH}`);
  if (!res.ok) throw new HttpError(res.status, await res.text());
  return parseIssuerDirectory(await res.text());
}

export async function clientFor(dir: IssuerDirectory, purpose: KeyPurpose): Promise<TokenClient> {
  const k = dir['token-keys'].find((x) => x.purpose === purpose);
  if (!k) throw new Error(`the directory lists no ${purpose} key`);
  return TokenClient.forKey(k['token-key']);
}

export async function blindRequests(client: TokenClient, issuerName: string, n: number): Promise<{ requests: TokenRequest[]; pending: PendingToken[] }> {
  const made = await client.createRequests(defaultChallenge(issuerName), n);
  return { requests: made.map((m) => m.request), pending: made.map((m) => m.pending) };
}

/** POSTs one batch; returns the response bytes (throws HttpError on a non-2xx). */
export async function postBatch(baseUrl: string, accountKey: string, requests: readonly TokenRequest[], idempotencyKey?: string, path = '/token-request'): Promise<Uint8Array> {
  const headers: Record<string, string> = { authorization: `Bearer ${accountKey}`, 'content-type': MEDIA_TYPE_BATCH_REQUEST };
  if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
  const res = await fetch(`${baseUrl}${path}`, { method: 'POST', headers, body: encodeBatchTokenRequest(requests) });
  const buf = new Uint8Array(await res.arrayBuffer());
  if (!res.ok) throw new HttpError(res.status, Buffer.from(buf).toString('utf8'));
  return buf;
}

/** Blind, issue in one batch, finalize: returns the 354-byte tokens. */
export async function issueTokens(baseUrl: string, accountKey: string, client: TokenClient, issuerName: string, n: number): Promise<Uint8Array[]> {
  const { requests, pending } = await blindRequests(client, issuerName, n);
  const resp = decodeBatchTokenResponse(await postBatch(baseUrl, accountKey, requests));
  const tokens: Uint8Array[] = [];
  for (let i = 0; i < resp.length; i++) {
    const r = resp[i];
    if (r) tokens.push(await client.finalize(pending[i]!, r));
  }
  return tokens;
}

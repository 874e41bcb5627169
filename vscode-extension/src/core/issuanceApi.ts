/**
 * The issuance side of an LLM-Tor server (docs/api.md; the `issuance` role): accounts,
 * balance, purchases and issuance. These calls carry the account key, so they may go over the clearnet (the server
 * knows who pays anyway) or over Tor — but always on a transport that never carries a
 * redemption (a Tor transport opens a fresh circuit per request).
 */
import { ACCOUNT_PATH, parseAccountView, type AccountView } from '@llmtor/protocol';
import { z } from 'zod';
import { readJson, serverError } from './apiErrors.js';
import { readAll } from './torTransport.js';
import type { Transport } from './transport.js';

/** The account as `GET /v1/account` shows it: the one shape in @llmtor/protocol the server writes. */
export type AccountInfo = AccountView;

const packsSchema = z.object({
  packs: z.array(z.object({ id: z.string(), credits: z.number(), amount: z.number(), currency: z.string(), name: z.string() }).passthrough()),
});
export type CreditPack = z.infer<typeof packsSchema>['packs'][number];

/** Account keys are digits shown in groups; spaces and dashes are not part of the key. */
export function normalizeAccountKey(text: string): string | undefined {
  const d = text.replace(/[\s-]/g, '');
  return /^\d{16,64}$/.test(d) ? d : undefined;
}

export class IssuanceApi {
  constructor(
    private readonly baseUrl: string,
    private readonly transport: Transport,
  ) {}

  url(path: string): string {
    return new URL(path, this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`).toString();
  }

  get transportKind(): 'tor' | 'clearnet' {
    return this.transport.kind;
  }

  async createAccount(): Promise<string> {
    const res = await this.transport.request(this.url('/v1/accounts'), { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: '{}' });
    const body = z.object({ account_key: z.string().min(1) }).parse(await readJson(res, 'creating an account'));
    return body.account_key;
  }

  async account(accountKey: string): Promise<AccountInfo> {
    const res = await this.transport.request(this.url(ACCOUNT_PATH), { headers: { authorization: `Bearer ${accountKey}`, accept: 'application/json' } });
    return parseAccountView(await readJson(res, 'reading the account'));
  }

  async packs(): Promise<CreditPack[]> {
    const res = await this.transport.request(this.url('/v1/packs'), { headers: { accept: 'application/json' } });
    return packsSchema.parse(await readJson(res, 'listing credit packs')).packs;
  }

  /** Starts a Stripe Checkout; returns the URL to open in the browser. */
  async purchase(accountKey: string, pack: string, idempotencyKey: string): Promise<{ checkoutUrl: string; sessionId?: string }> {
    const res = await this.transport.request(this.url('/v1/purchases'), {
      method: 'POST',
      headers: { authorization: `Bearer ${accountKey}`, 'content-type': 'application/json', accept: 'application/json', 'idempotency-key': idempotencyKey },
      body: JSON.stringify({ pack }),
    });
    const body = z.object({ checkout_url: z.string().url(), session_id: z.string().optional() }).parse(await readJson(res, 'starting a purchase'));
    return body.session_id ? { checkoutUrl: body.checkout_url, sessionId: body.session_id } : { checkoutUrl: body.checkout_url };
  }

  /** The issuer directory as the issuance side shows it (raw JSON; the caller validates). */
  async directory(): Promise<unknown> {
    const res = await this.transport.request(this.url('/.well-known/private-token-issuer-directory'), { headers: { accept: 'application/private-token-issuer-directory, application/json' } });
    return readJson(res, 'fetching the issuer directory');
  }

  /**
   * POSTs a generic batch token request to the directory's issuer-request-uri (resolved
   * against the base URL). Same Idempotency-Key + same body → the same signatures.
   */
  async issue(issuerRequestUri: string, accountKey: string, body: Uint8Array, idempotencyKey: string): Promise<Uint8Array> {
    const target = new URL(issuerRequestUri, this.url('/')).toString();
    const res = await this.transport.request(target, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${accountKey}`,
        'content-type': 'application/private-token-generic-batch-request',
        accept: 'application/private-token-generic-batch-response',
        'idempotency-key': idempotencyKey,
      },
      body,
      timeoutMs: 180_000,
    });
    if (res.status !== 200 && res.status !== 206) throw await serverError(res, 'getting tokens');
    const bytes = await readAll(res.body, 8 * 1024 * 1024);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}

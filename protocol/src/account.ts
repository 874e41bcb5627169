/**
 * The account view of the issuance API, `GET /v1/account` (docs/api.md): what
 * the server writes, what its clients read. One shape for the proxy (writer),
 * its dev client and the VS Code extension (readers). Reading is strict on the
 * fields a client relies on and ignores unknown ones, so newer servers stay
 * readable.
 */
import { ProtocolError } from './errors.js';

export const ACCOUNT_PATH = '/v1/account';

export interface AccountPurchaseView {
  /** Stripe Checkout session id. */
  session_id: string;
  pack: string;
  credits: number;
  /** Minor units of `currency`. */
  amount: number;
  currency: string;
  status: string;
  created_at: string;
  paid_at: string | null;
  /** Credits taken back after a refund or dispute. */
  reversed_credits: number;
}

export interface AbuseTokenQuotaView {
  issued: number;
  limit: number;
}

export interface AccountView {
  /** The opaque reference Stripe sees (client_reference_id); safe to give to support, unlike the key. */
  account_ref: string;
  balance: number;
  created_at: string;
  purchases: AccountPurchaseView[];
  abuse_tokens: {
    permanent: AbuseTokenQuotaView;
    transient: AbuseTokenQuotaView & { epoch: string };
  };
}

type Json = Record<string, unknown>;

function object(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError('malformed', `${what} must be an object`);
  return v as Json;
}

function field<T>(o: Json, name: string, what: string, check: (v: unknown) => v is T, kind: string): T {
  const v = o[name];
  if (!check(v)) throw new ProtocolError('malformed', `${what}.${name} must be ${kind}`);
  return v;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInteger = (v: unknown): v is number => Number.isInteger(v);
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';

function quota(v: unknown, what: string): AbuseTokenQuotaView {
  const o = object(v, what);
  return { issued: field(o, 'issued', what, isNumber, 'a number'), limit: field(o, 'limit', what, isNumber, 'a number') };
}

function purchase(v: unknown, i: number): AccountPurchaseView {
  const what = `purchases[${i}]`;
  const o = object(v, what);
  return {
    session_id: field(o, 'session_id', what, isString, 'a string'),
    pack: field(o, 'pack', what, isString, 'a string'),
    credits: field(o, 'credits', what, isNumber, 'a number'),
    amount: field(o, 'amount', what, isNumber, 'a number'),
    currency: field(o, 'currency', what, isString, 'a string'),
    status: field(o, 'status', what, isString, 'a string'),
    created_at: field(o, 'created_at', what, isString, 'a string'),
    paid_at: field(o, 'paid_at', what, isStringOrNull, 'a string or null'),
    reversed_credits: field(o, 'reversed_credits', what, isNumber, 'a number'),
  };
}

/** Reads a `GET /v1/account` body (parsed JSON); unknown fields are dropped. */
export function parseAccountView(value: unknown): AccountView {
  const o = object(value, 'account');
  const purchases = o['purchases'];
  if (!Array.isArray(purchases)) throw new ProtocolError('malformed', 'account.purchases must be an array');
  const abuse = object(o['abuse_tokens'], 'account.abuse_tokens');
  const transient = quota(abuse['transient'], 'account.abuse_tokens.transient');
  return {
    account_ref: field(o, 'account_ref', 'account', isString, 'a string'),
    balance: field(o, 'balance', 'account', isInteger, 'an integer'),
    created_at: field(o, 'created_at', 'account', isString, 'a string'),
    purchases: purchases.map(purchase),
    abuse_tokens: {
      permanent: quota(abuse['permanent'], 'account.abuse_tokens.permanent'),
      transient: { epoch: field(object(abuse['transient'], 'account.abuse_tokens.transient'), 'epoch', 'account.abuse_tokens.transient', isString, 'a string'), ...transient },
    },
  };
}

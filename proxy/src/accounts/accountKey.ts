/**
 * Account keys: 40 random decimal digits (≈132.9 bits), shown once in groups of
 * four like a Mullvad number. The server keeps only HMAC-SHA256(pepper, digits):
 * a database leak alone does not give usable keys, and without the pepper the
 * hashes cannot even be brute-forced offline.
 */
import { createHmac, randomBytes, randomInt } from 'node:crypto';

export const ACCOUNT_KEY_DIGITS = 40;

export function generateAccountKey(): string {
  let d = '';
  for (let i = 0; i < ACCOUNT_KEY_DIGITS; i++) d += String(randomInt(0, 10));
  return d;
}

/** "1234 5678 …": how the key is shown; spaces are optional when it is sent back. */
export function formatAccountKey(digits: string): string {
  return digits.replace(/(\d{4})(?=\d)/g, '$1 ');
}

/** Normalises a presented key (spaces and dashes allowed between digits); undefined if it cannot be one. */
export function normalizeAccountKey(text: string): string | undefined {
  if (text.length > 120) return undefined;
  const d = text.replace(/[\s-]/g, '');
  return /^\d+$/.test(d) && d.length === ACCOUNT_KEY_DIGITS ? d : undefined;
}

/** The value of `Authorization: Bearer <account key>`, normalised, or undefined. */
export function accountKeyFromAuthorization(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(header.trim());
  return m ? normalizeAccountKey(m[1]!) : undefined;
}

export function hashAccountKey(pepper: string | Uint8Array, digits: string): string {
  return createHmac('sha256', pepper).update(`llmtor-account-key-v1:${digits}`).digest('hex');
}

/** The opaque account reference: the ledger's key and Stripe's client_reference_id; says nothing about the key. */
export function newAccountId(): string {
  return `acct_${randomBytes(16).toString('hex')}`;
}

export function isAccountId(v: unknown): v is string {
  return typeof v === 'string' && /^acct_[0-9a-f]{32}$/.test(v);
}

/**
 * One parser for the HTTP authentication header grammar of RFC 9110, used by
 * every header we read that has its shape (Authorization, WWW-Authenticate and
 * the auth-param list of LLMTor-Abuse):
 *
 *   WWW-Authenticate = #challenge                                    (§11.6.1)
 *   Authorization    = credentials                                   (§11.6.2)
 *   challenge / credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]   (§11.3, §11.4)
 *   auth-param = token BWS "=" BWS ( token / quoted-string )          (§11.2)
 *   token68    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 *   token      = 1*tchar                                              (§5.6.2)
 *   quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE          (§5.6.4)
 *
 * A list (`#rule`, §5.6.1) separates elements with OWS "," OWS and a recipient
 * accepts empty elements. A comma inside a quoted-string belongs to the value.
 * Parameter names are case-insensitive and occur at most once per challenge
 * (§11.2); the scheme name is case-insensitive (§11.1). What a scheme does
 * with parameters it does not know is the caller's business (RFC 9577 §2.1.2
 * and §2.2.2: ignore them). Linear in the input; throws only ProtocolError.
 * One leniency: an unquoted value may end in "=" padding (see `authParams`).
 */
import { ProtocolError } from './errors.js';

export interface AuthItem {
  /** The auth-scheme as written. */
  scheme: string;
  token68?: string;
  /** Parameter names lower-cased; quoted-string values unescaped. */
  params: Map<string, string>;
}

/**
 * Character classes as lookup tables by char code: a regex test per character cost
 * ~15 µs per request on the redemption path (a 472-character base64url token).
 */
function charTable(chars: string): Uint8Array {
  const t = new Uint8Array(128);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const TCHAR = charTable(`!#$%&'*+-.^_\`|~${ALNUM}`);
const TOKEN68_CHAR = charTable(`-._~+/${ALNUM}`);
/** Whether the char code `ch` is in `table` (codes ≥ 128 never are; NaN past the end is not). */
const inTable = (table: Uint8Array, ch: number): boolean => ch < 128 && table[ch] === 1;

class Cursor {
  pos = 0;
  constructor(readonly s: string) {}
  get done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string {
    return this.s[this.pos] ?? '';
  }
  ows(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  token(): string {
    const start = this.pos;
    while (inTable(TCHAR, this.s.charCodeAt(this.pos))) this.pos++;
    return this.s.slice(start, this.pos);
  }
  fail(why: string): never {
    throw new ProtocolError('malformed', `authentication header: ${why} at offset ${this.pos}`);
  }
}

function quotedString(c: Cursor): string {
  c.pos++; // opening DQUOTE
  let out = '';
  for (;;) {
    if (c.done) c.fail('unterminated quoted-string');
    const ch = c.s.charCodeAt(c.pos);
    if (ch === 0x22) {
      c.pos++;
      return out;
    }
    if (ch === 0x5c) {
      const next = c.s.charCodeAt(c.pos + 1);
      if (!(next === 0x09 || (next >= 0x20 && next !== 0x7f && next <= 0xff))) c.fail('bad quoted-pair');
      out += c.s[c.pos + 1];
      c.pos += 2;
      continue;
    }
    if (!(ch === 0x09 || (ch >= 0x20 && ch !== 0x7f && ch <= 0xff))) c.fail('control character in quoted-string');
    out += c.s[c.pos];
    c.pos++;
  }
}

/** token68 here if the rest of this list element is exactly one token68. */
function token68At(c: Cursor): string | undefined {
  let i = c.pos;
  while (inTable(TOKEN68_CHAR, c.s.charCodeAt(i))) i++;
  if (i === c.pos) return undefined;
  while (c.s[i] === '=') i++;
  const end = i;
  while (c.s[i] === ' ' || c.s[i] === '\t') i++;
  if (i < c.s.length && c.s[i] !== ',') return undefined;
  const v = c.s.slice(c.pos, end);
  c.pos = end;
  return v;
}

/** Skips OWS and commas (empty list elements); true if anything is left. */
function skipSeparators(c: Cursor): boolean {
  for (;;) {
    c.ows();
    if (c.peek() !== ',') return !c.done;
    c.pos++;
  }
}

/** Whether the list element at the cursor is an auth-param (`name =`) rather than a new scheme. */
function paramAhead(c: Cursor): boolean {
  const save = c.pos;
  const name = c.token();
  c.ows();
  const isParam = name.length > 0 && c.peek() === '=';
  c.pos = save;
  return isParam;
}

/** Parses `#auth-param` from the cursor into `params` until the next scheme or the end. */
function authParams(c: Cursor, params: Map<string, string>, stopAtScheme: boolean): void {
  for (;;) {
    if (!skipSeparators(c)) return;
    if (stopAtScheme && !paramAhead(c)) return;
    const name = c.token();
    if (!name) c.fail('expected an auth-param name');
    c.ows();
    if (c.peek() !== '=') c.fail('expected "=" after an auth-param name');
    c.pos++;
    c.ows();
    let value: string;
    if (c.peek() === '"') value = quotedString(c);
    else {
      value = c.token();
      if (!value) c.fail('expected a token or quoted-string value');
      // Lenient: an unquoted base64url value with its "=" padding (not a token, but sent in
      // the wild; @cloudflare/privacypass-ts reads it too). Unambiguous before "," or the end.
      while (c.peek() === '=') value += c.s[c.pos++];
    }
    const key = name.toLowerCase();
    if (params.has(key)) c.fail(`auth-param "${key}" occurs twice`);
    params.set(key, value);
    c.ows();
    if (!c.done && c.peek() !== ',') c.fail('expected "," between auth-params');
  }
}

/**
 * Parses a challenge list (WWW-Authenticate) or credentials (Authorization;
 * a comma-separated list of several credentials is read too, see
 * `parseAuthorization`). Returns [] for an empty or absent value.
 */
export function parseAuthItems(header: string | undefined): AuthItem[] {
  if (header === undefined) return [];
  const c = new Cursor(header);
  const out: AuthItem[] = [];
  while (skipSeparators(c)) {
    const scheme = c.token();
    if (!scheme) c.fail('expected an auth-scheme');
    const item: AuthItem = { scheme, params: new Map() };
    out.push(item);
    if (c.done || c.peek() === ',') continue;
    if (c.peek() !== ' ') c.fail('expected a space after the auth-scheme');
    while (c.peek() === ' ') c.pos++;
    if (c.done || c.peek() === ',') continue;
    const t68 = token68At(c);
    if (t68 !== undefined) {
      item.token68 = t68;
      c.ows();
      if (!c.done && c.peek() !== ',') c.fail('expected "," after token68');
      continue;
    }
    authParams(c, item.params, true);
  }
  return out;
}

/** Parses a bare `#auth-param` list (no scheme), such as LLMTor-Abuse. */
export function parseAuthParamList(value: string): Map<string, string> {
  const params = new Map<string, string>();
  authParams(new Cursor(value), params, false);
  return params;
}

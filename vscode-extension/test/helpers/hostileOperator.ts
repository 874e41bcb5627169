/**
 * A malicious operator for tests: two loopback HTTP fronts (the identity side and the
 * anonymous side, as an operator running both would have) in front of the REAL proxy
 * (startLocalStack). It forwards everything to the real proxy unless a hook answers
 * instead, and records every request with the time of a clock the test controls — what an
 * operator correlating both sides would log: the account on the identity side, the abuse
 * pseudonym and token count on the anonymous side, and which credit/abuse key each batch
 * request was for.
 */
import { createHash, createPublicKey } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeBatchTokenRequest, fromBase64Url, parseAuthorization, parseIssuerDirectory, pssSpkiFromPublicKey, publicKeyFromPssSpki, toBase64Url, tokenKeyId, type IssuerDirectory, type KeyPurpose } from '@llmtor/protocol';

export interface SeenRequest {
  at: number;
  side: 'identity' | 'anonymous';
  method: string;
  path: string;
  /** Identity side: the account key that authenticated (what the operator links to a payer). */
  account?: string;
  /** Anonymous side: hash of the abuse header (the pseudonym) and credit tokens presented. */
  pseudonym?: string;
  tokens?: number;
  /** Batch issuance: purposes of the keys requested (from the truncated key ids) and the count. */
  issued?: { purpose: KeyPurpose | 'unknown'; count: number };
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body: string | Uint8Array;
}

export interface Hooks {
  /** Rewrite the directory the anonymous side serves (n: how many times it was fetched). */
  anonymousDirectory?: (real: IssuerDirectory, n: number) => IssuerDirectory;
  /** Rewrite the directory the identity side serves (account: the caller's bearer, if any). */
  identityDirectory?: (real: IssuerDirectory, account: string | undefined) => IssuerDirectory;
  /** Answer an anonymous request instead of the real proxy. */
  anonymous?: (req: SeenRequest, body: Buffer) => Reply | undefined;
}

export interface HostileOperator {
  identityUrl: string;
  anonymousUrl: string;
  anonymousPort: number;
  seen: SeenRequest[];
  hooks: Hooks;
  /** The real directory the proxy serves. */
  realDirectory(): Promise<IssuerDirectory>;
  close(): Promise<void>;
}

/** Another valid RSA public key (same modulus, another exponent) as a PSS SPKI: cheap, no key generation. */
export function variantKey(tokenKey: string, exponent: number): string {
  const jwk = publicKeyFromPssSpki(fromBase64Url(tokenKey, 'token-key')).export({ format: 'jwk' });
  const e = Buffer.from(exponent.toString(16).padStart(exponent.toString(16).length + (exponent.toString(16).length % 2), '0'), 'hex');
  return toBase64Url(pssSpkiFromPublicKey(createPublicKey({ key: { kty: 'RSA', n: jwk.n!, e: e.toString('base64url') }, format: 'jwk' })));
}

export async function startHostileOperator(upstream: string, now: () => number): Promise<HostileOperator> {
  const seen: SeenRequest[] = [];
  const hooks: Hooks = {};
  let anonymousDirFetches = 0;
  const realDirectory = async () => parseIssuerDirectory(await (await fetch(`${upstream}/.well-known/private-token-issuer-directory`)).json());

  async function forward(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): Promise<void> {
    const r = await fetch(new URL(req.url ?? '/', upstream), {
      method: req.method ?? 'GET',
      headers: Object.fromEntries(Object.entries(req.headers).filter(([k, v]) => typeof v === 'string' && !['host', 'connection', 'content-length'].includes(k))) as Record<string, string>,
      ...(body.length > 0 ? { body } : {}),
    });
    const headers: Record<string, string> = {};
    r.headers.forEach((v, k) => {
      if (!['content-length', 'transfer-encoding', 'connection', 'content-encoding'].includes(k)) headers[k] = v;
    });
    res.writeHead(r.status, headers);
    if (r.body) for await (const chunk of r.body) res.write(chunk);
    res.end();
  }

  function reply(res: http.ServerResponse, r: Reply): void {
    res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers });
    res.end(r.body);
  }

  function handler(side: 'identity' | 'anonymous') {
    return (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void (async () => {
          const body = Buffer.concat(chunks);
          const path = (req.url ?? '/').split('?')[0]!;
          const s: SeenRequest = { at: now(), side, method: req.method ?? 'GET', path };
          const auth = req.headers.authorization;
          if (side === 'identity' && typeof auth === 'string' && auth.startsWith('Bearer ')) s.account = auth.slice(7);
          if (side === 'anonymous') {
            const abuse = req.headers['llmtor-abuse'];
            if (typeof abuse === 'string') s.pseudonym = createHash('sha256').update(abuse).digest('hex').slice(0, 16);
            if (typeof auth === 'string' && auth.startsWith('PrivateToken')) s.tokens = parseAuthorization(auth).length;
          }
          if (side === 'identity' && req.headers['content-type'] === 'application/private-token-generic-batch-request') {
            const reqs = decodeBatchTokenRequest(new Uint8Array(body));
            const dir = await realDirectory();
            const byTrunc = new Map(dir['token-keys'].map((k) => [tokenKeyId(fromBase64Url(k['token-key'], 'k')).at(-1)!, k.purpose ?? 'credit'] as const));
            s.issued = { purpose: byTrunc.get(reqs[0]!.truncatedTokenKeyId) ?? 'unknown', count: reqs.length };
          }
          seen.push(s);
          try {
            if (path === '/.well-known/private-token-issuer-directory') {
              const real = await realDirectory();
              const doc = side === 'anonymous' ? (hooks.anonymousDirectory?.(real, anonymousDirFetches++) ?? real) : (hooks.identityDirectory?.(real, s.account) ?? real);
              return reply(res, { status: 200, headers: { 'content-type': 'application/private-token-issuer-directory' }, body: JSON.stringify(doc) });
            }
            const custom = side === 'anonymous' ? hooks.anonymous?.(s, body) : undefined;
            if (custom) return reply(res, custom);
            await forward(req, body, res);
          } catch (e) {
            if (!res.headersSent) reply(res, { status: 502, body: JSON.stringify({ error: { code: 'front_failed', message: String(e) } }) });
            else res.destroy();
          }
        })();
      });
    };
  }

  const listen = async (h: http.RequestListener) => {
    const server = http.createServer(h);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return server;
  };
  const identity = await listen(handler('identity'));
  const anonymous = await listen(handler('anonymous'));
  const port = (s: http.Server) => (s.address() as AddressInfo).port;
  return {
    identityUrl: `http://127.0.0.1:${port(identity)}`,
    anonymousUrl: `http://127.0.0.1:${port(anonymous)}`,
    anonymousPort: port(anonymous),
    seen,
    hooks,
    realDirectory,
    async close() {
      for (const s of [identity, anonymous]) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
    },
  };
}

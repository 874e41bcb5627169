/**
 * A local HTTPS stand-in for Azure Key Vault (keys only), for driving the real
 * `@azure/keyvault-keys` SDK in tests.
 *
 * It follows the published Key Vault REST API (data plane, "keys" operations) and the
 * behaviour the SDK relies on:
 *
 * - Challenge-based auth: a request without `Authorization` gets 401 with
 *   `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
 *   resource="https://vault.azure.net"`; the SDK then asks its credential for a token for
 *   `https://vault.azure.net/.default` (tenant from the challenge) and retries. Every
 *   request must carry a bearer token this stand-in issued (through {@link
 *   KeyVaultStandIn.credential}) or accepted ({@link KeyVaultStandIn.acceptToken}), not
 *   expired and not revoked; anything else is 401 with the same challenge.
 * - HTTPS only, with a CA generated at start (openssl CLI); give {@link
 *   KeyVaultStandIn.caPem} to the SDK through `tlsOptions: { ca }` (see {@link
 *   KeyVaultStandIn.clientOptions}); nothing is trusted process-wide.
 * - Real RSA keys (node:crypto), real RSA-OAEP-256 / RSA-OAEP wrap, unwrap, encrypt,
 *   decrypt. Old versions keep working after a rotation.
 * - Errors in Key Vault's shape `{"error":{"code","message"}}` with the service's
 *   statuses: 400 BadParameter, 401 Unauthorized, 403 Forbidden (disabled key, operation
 *   not in key_ops), 404 KeyNotFound, 409 Conflict (name of a deleted key), 503
 *   ServiceUnavailable (fault injection).
 *
 * Routes (all need `api-version`):
 *   POST   /keys/{name}/create                 create (or add a version)
 *   PUT    /keys/{name}                        import (JWK with private parts)
 *   GET    /keys/{name}[/]                     latest version
 *   GET    /keys/{name}/{version}              one version
 *   PATCH  /keys/{name}[/{version}]            update attributes / key_ops / tags
 *   GET    /keys/{name}/versions               list versions (paged, maxresults)
 *   GET    /keys                               list keys (paged, maxresults)
 *   POST   /keys/{name}/rotate                 new version with the same kty/size/ops
 *   POST   /keys/{name}/{version}/wrapkey|unwrapkey|encrypt|decrypt   {alg, value}
 *   DELETE /keys/{name}                        soft delete
 *   GET    /deletedkeys/{name}                 deleted key
 *   DELETE /deletedkeys/{name}                 purge
 *   POST   /deletedkeys/{name}/recover         recover
 *
 * The key model and the routing are keyVaultStore.ts; this file is the HTTPS server,
 * authentication, fault injection and statistics.
 *
 * Not modelled: EC / oct / HSM-only features, sign/verify, backup/restore, release,
 * rotation policies, RSA1_5 unwrap (Node 20 refuses PKCS#1 v1.5 decryption).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyStore, KvError, nowSeconds, type KeyVaultOperation } from './keyVaultStore.js';
import { makeTestPki } from './testPki.js';


/** The token audience Key Vault announces in its challenge. */
export const KEY_VAULT_RESOURCE = 'https://vault.azure.net';
export const KEY_VAULT_SCOPE = `${KEY_VAULT_RESOURCE}/.default`;

/** Fault modes for failure tests. `false` = healthy. */
export type UnreachableMode =
  | false
  /** stop listening: new connections get ECONNREFUSED; open connections are closed. */
  | 'refuse'
  /** answer every request with 503 ServiceUnavailable (Key Vault error JSON). */
  | '503'
  /** accept and read requests but never answer (client time-outs). */
  | 'hang'
  /** accept, then reset the connection (ECONNRESET / socket hang up). */
  | 'reset';


export type { KeyVaultOperation };

export interface RequestLogEntry {
  method: string;
  /** path without the query string */
  path: string;
  operation: KeyVaultOperation;
  apiVersion: string | null;
  /** whether a valid bearer token was presented */
  authorized: boolean;
  status: number;
  /** Key Vault error code when status >= 400 */
  errorCode?: string;
}

export interface KeyVaultStats {
  /** requests that reached the HTTP handler (including 401s and fault answers) */
  total: number;
  /** successful (2xx) calls per operation */
  ok: Partial<Record<KeyVaultOperation, number>>;
  /** all calls per operation that passed authentication, whatever the outcome */
  byOperation: Partial<Record<KeyVaultOperation, number>>;
  /** 401 answers (challenge or bad token) */
  unauthorized: number;
  /** requests answered by a fault mode (503) or dropped by 'hang' / 'reset' */
  faulted: number;
  /** tokens handed out by {@link KeyVaultStandIn.credential} */
  tokensIssued: number;
  /** connections refused are not counted: nothing reaches the process */
}

/** Structurally the `TokenCredential` of `@azure/core-auth`. */
export interface StandInCredential {
  getToken(
    scopes: string | string[],
    options?: { tenantId?: string; claims?: string; abortSignal?: unknown },
  ): Promise<{ token: string; expiresOnTimestamp: number; tokenType?: 'Bearer' } | null>;
  /** every getToken call: scopes and tenant requested */
  readonly calls: { scopes: string[]; tenantId: string | undefined; claims: string | undefined }[];
}

export interface KeyVaultStandInOptions {
  /** tenant announced in the challenge; default a random UUID */
  tenantId?: string;
  /** host name used in `vaultUrl` and key ids: '127.0.0.1' (default) or 'localhost' */
  host?: '127.0.0.1' | 'localhost';
  /** port to listen on, default a free one */
  port?: number;
  /** lifetime of issued tokens in seconds, default 3600 */
  tokenLifetimeSeconds?: number;
  /** `x-ms-keyvault-service-version` header value */
  serviceVersion?: string;
}

export interface KeyVaultStandIn {
  /** e.g. `https://127.0.0.1:43123` (no trailing slash), pass to `new KeyClient(vaultUrl, …)` */
  readonly vaultUrl: string;
  readonly port: number;
  readonly tenantId: string;
  /** PEM of the CA that signed the server certificate */
  readonly caPem: string;
  /** A TokenCredential that gets tokens this vault accepts (checks scope and tenant). */
  readonly credential: StandInCredential;
  /**
   * Options for `KeyClient` / `CryptographyClient`: trust the test CA (`tlsOptions.ca`),
   * accept the non-Azure challenge resource, and no retries (fast failure tests).
   */
  clientOptions(): {
    tlsOptions: { ca: string };
    disableChallengeResourceVerification: true;
    retryOptions: { maxRetries: number };
  };
  /** Make a bearer token valid (for credentials other than {@link credential}). */
  acceptToken(token: string, expiresOnTimestamp?: number): void;
  /**
   * Revoke every token issued so far. A revoked token gets 401 with a CAE claims challenge
   * (`error="insufficient_claims"`), as Key Vault answers under Continuous Access
   * Evaluation; the SDK then asks its credential again (with `claims`) and retries.
   */
  revokeAllTokens(): void;
  /** Fault injection; resolves once the mode is in force. */
  setUnreachable(mode: UnreachableMode): Promise<void>;
  readonly unreachable: UnreachableMode;
  stats(): KeyVaultStats;
  /** every request seen, oldest first */
  readonly requests: readonly RequestLogEntry[];
  resetStats(): void;
  /** Versions of a key, oldest first ([] if unknown); for assertions. */
  versionsOf(name: string): string[];
  close(): Promise<void>;
}

// ----------------------------------------------------------------------------- server

export async function startKeyVaultStandIn(opts: KeyVaultStandInOptions = {}): Promise<KeyVaultStandIn> {
  const tenantId = opts.tenantId ?? randomUUID();
  const host = opts.host ?? '127.0.0.1';
  const tokenLifetime = opts.tokenLifetimeSeconds ?? 3600;
  const serviceVersion = opts.serviceVersion ?? '1.9.0.0';
  const challenge = `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="${KEY_VAULT_RESOURCE}"`;

  const dir = await mkdtemp(join(tmpdir(), 'llmtor-kv-'));
  let tls: { caPem: string; cert: string; key: string };
  try {
    const pki = await makeTestPki(dir, { caName: 'LLM-Tor Key Vault stand-in test CA', serverName: 'localhost', altNames: ['DNS:localhost', 'IP:127.0.0.1'], days: 2 });
    tls = { caPem: pki.caPem, cert: await readFile(pki.certFile, 'utf8'), key: await readFile(pki.keyFile, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const tokens = new Map<string, number>(); // token -> expiresOnTimestamp (ms)
  const revoked = new Set<string>();
  const requests: RequestLogEntry[] = [];
  let stats = emptyStats();
  let mode: UnreachableMode = false;
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let vaultUrl = '';
  const store = new KeyStore(() => vaultUrl);

  function emptyStats(): KeyVaultStats {
    return { total: 0, ok: {}, byOperation: {}, unauthorized: 0, faulted: 0, tokensIssued: 0 };
  }

  function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const headers: Record<string, string> = {
      'cache-control': 'no-cache',
      'x-ms-request-id': randomUUID(),
      'x-ms-keyvault-service-version': serviceVersion,
      'x-ms-keyvault-region': 'local',
      'strict-transport-security': 'max-age=31536000;includeSubDomains',
      'x-content-type-options': 'nosniff',
      ...extra,
    };
    if (body === undefined) {
      res.writeHead(status, headers).end();
      return;
    }
    const text = JSON.stringify(body);
    res
      .writeHead(status, {
        ...headers,
        'content-type': 'application/json; charset=utf-8',
        'content-length': String(Buffer.byteLength(text)),
      })
      .end(text);
  }

  function readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 1 << 20) {
          reject(new KvError(413, 'RequestEntityTooLarge', 'The request body is too large.'));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  function checkToken(req: IncomingMessage): 'ok' | 'missing' | 'invalid' | 'revoked' {
    const h = req.headers.authorization;
    if (!h) return 'missing';
    const m = /^Bearer (\S+)$/i.exec(h);
    if (!m) return 'invalid';
    if (revoked.has(m[1]!)) return 'revoked';
    const exp = tokens.get(m[1]!);
    return exp !== undefined && exp > Date.now() ? 'ok' : 'invalid';
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.total++;
    const url = new URL(req.url ?? '/', vaultUrl);
    const method = (req.method ?? 'GET').toUpperCase();
    const segs = url.pathname.split('/').slice(1);
    const { op, run } = store.route(method, segs);
    const entry: RequestLogEntry = {
      method,
      path: url.pathname,
      operation: op,
      apiVersion: url.searchParams.get('api-version'),
      authorized: false,
      status: 0,
    };
    requests.push(entry);
    const finish = (status: number, body: unknown, extra?: Record<string, string>) => {
      entry.status = status;
      const code = (body as { error?: { code?: string } } | undefined)?.error?.code;
      if (code) entry.errorCode = code;
      send(res, status, body, extra);
    };

    if (mode === 'hang') {
      stats.faulted++;
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      req.resume();
      return;
    }
    if (mode === 'reset') {
      stats.faulted++;
      req.socket.destroy();
      return;
    }
    if (mode === '503') {
      stats.faulted++;
      req.resume();
      finish(503, { error: { code: 'ServiceUnavailable', message: 'The service is unavailable (stand-in fault injection).' } });
      return;
    }

    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (err) {
      if (err instanceof KvError) finish(err.status, { error: { code: err.code, message: err.message } });
      return;
    }

    // Authentication comes first: the SDK's first request carries no token and no body.
    const auth = checkToken(req);
    if (auth !== 'ok') {
      stats.unauthorized++;
      if (auth === 'revoked') {
        // Continuous Access Evaluation: a revoked token gets a claims challenge, on which
        // the SDK asks its credential for a fresh token (with `claims`) and retries.
        const claims = Buffer.from(
          JSON.stringify({ access_token: { nbf: { essential: true, value: String(nowSeconds()) } } }),
        ).toString('base64');
        finish(
          401,
          { error: { code: 'Unauthorized', message: 'AKV10013: The token has been revoked (claims challenge).' } },
          {
            'www-authenticate': `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="${claims}"`,
          },
        );
        return;
      }
      const message =
        auth === 'invalid'
          ? 'AKV10032: Invalid or expired bearer token (not issued by this stand-in).'
          : 'AKV10000: Request is missing a Bearer or PoP token.';
      finish(401, { error: { code: 'Unauthorized', message } }, { 'www-authenticate': challenge });
      return;
    }
    entry.authorized = true;
    stats.byOperation[op] = (stats.byOperation[op] ?? 0) + 1;

    try {
      if (!entry.apiVersion) {
        throw new KvError(400, 'BadParameter', 'The api-version query parameter is missing.');
      }
      if (!/^(\d+\.\d+(-preview)?|\d{4}-\d{2}-\d{2}(-preview)?)$/.test(entry.apiVersion)) {
        throw new KvError(400, 'BadParameter', `The specified version (${entry.apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`);
      }
      let json: Record<string, unknown> = {};
      if (body.length > 0) {
        try {
          const parsed: unknown = JSON.parse(body.toString('utf8'));
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
          json = parsed as Record<string, unknown>;
        } catch {
          throw new KvError(400, 'BadParameter', 'The request body is not a valid JSON object.');
        }
      }
      const result = await run(json, url);
      stats.ok[op] = (stats.ok[op] ?? 0) + 1;
      finish(result === undefined ? 204 : 200, result);
    } catch (err) {
      if (err instanceof KvError) {
        finish(err.status, { error: { code: err.code, message: err.message } });
      } else {
        finish(500, { error: { code: 'InternalServerError', message: (err as Error).message } });
      }
    }
  }

  const server: Server = createServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: { code: 'InternalServerError', message: String(err) } });
    });
  });
  server.keepAliveTimeout = 5000;
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', onError);
        const addr = server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    });
  const stopListening = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
      for (const r of hanging) r.destroy();
    });

  const port = await listen(opts.port ?? 0);
  vaultUrl = `https://${host}:${port}`;

  const credential: StandInCredential = {
    calls: [],
    async getToken(scopes, options) {
      const list = Array.isArray(scopes) ? [...scopes] : [scopes];
      credential.calls.push({ scopes: list, tenantId: options?.tenantId, claims: options?.claims });
      if (list.length !== 1 || list[0] !== KEY_VAULT_SCOPE) {
        throw new Error(`stand-in credential: unexpected scopes ${JSON.stringify(list)} (want ["${KEY_VAULT_SCOPE}"])`);
      }
      if (options?.tenantId !== undefined && options.tenantId !== tenantId) {
        throw new Error(`stand-in credential: unexpected tenant ${options.tenantId} (challenge announced ${tenantId})`);
      }
      const token = `kvtest.${randomBytes(24).toString('base64url')}`;
      const expiresOnTimestamp = Date.now() + tokenLifetime * 1000;
      tokens.set(token, expiresOnTimestamp);
      stats.tokensIssued++;
      return { token, expiresOnTimestamp, tokenType: 'Bearer' };
    },
  };

  let closed = false;
  return {
    get vaultUrl() {
      return vaultUrl;
    },
    port,
    tenantId,
    caPem: tls.caPem,
    credential,
    clientOptions: () => ({
      tlsOptions: { ca: tls.caPem },
      disableChallengeResourceVerification: true as const,
      retryOptions: { maxRetries: 0 },
    }),
    acceptToken(token, expiresOnTimestamp = Date.now() + tokenLifetime * 1000) {
      tokens.set(token, expiresOnTimestamp);
    },
    revokeAllTokens() {
      for (const t of tokens.keys()) revoked.add(t);
      tokens.clear();
    },
    get unreachable() {
      return mode;
    },
    async setUnreachable(next) {
      if (closed) throw new Error('key vault stand-in is closed');
      const prev = mode;
      mode = next;
      if (next === 'refuse' && prev !== 'refuse') {
        await stopListening();
      } else if (next !== 'refuse' && prev === 'refuse') {
        await listen(port);
      }
      if (next !== 'hang') {
        for (const r of hanging) r.destroy();
        hanging.clear();
      }
    },
    stats: () => structuredClone(stats),
    requests,
    resetStats() {
      stats = { ...emptyStats(), tokensIssued: 0 };
      requests.length = 0;
    },
    versionsOf(name) {
      return store.versionsOf(name);
    },
    async close() {
      if (closed) return;
      closed = true;
      await stopListening();
    },
  };
}

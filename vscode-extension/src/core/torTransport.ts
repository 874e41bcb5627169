/**
 * HTTP over Tor, and only over Tor.
 *
 * - `socks5h://` always: the target host name (including `.onion`) goes to Tor inside the
 *   SOCKS request, never to a local resolver.
 * - A fresh circuit per request: every request gets its own agent with random SOCKS
 *   credentials; Tor's IsolateSOCKSAuth (on by default) puts streams with different
 *   credentials on different circuits. A request may instead go on a connection a circuit
 *   pool opened earlier with credentials of its own (`pooled`, circuitPool.ts): still one
 *   circuit per request, built before the request needed it.
 * - No fallback: if the SOCKS port is closed or Tor fails, the request fails. There is no
 *   code path that connects to the target directly.
 * - VS Code's `http.proxySupport` patches `http.request`/`https.request` and may replace the
 *   agent a caller passes. We therefore construct `http.ClientRequest` ourselves (the class
 *   is not patched) with our agent, and check on the 'socket' event that the socket really
 *   came from our agent; any other socket is destroyed before a byte is written.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { SocksProxyAgent } from 'socks-proxy-agent';

/** Where Tor's SOCKS port listens. */
export interface SocksEndpoint {
  host: string;
  port: number;
}

export interface SocksCredentials {
  username: string;
  password: string;
}

/** Random SOCKS credentials: a stream with new credentials never shares a circuit with an earlier one. */
export function freshCredentials(): SocksCredentials {
  return { username: randomBytes(12).toString('hex'), password: randomBytes(12).toString('hex') };
}

/** The proxy URL for one request: always socks5h (DNS through Tor). */
export function socksProxyUrl(endpoint: SocksEndpoint, creds: SocksCredentials): string {
  if (!Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535) {
    throw new TorTransportError('bad_socks_endpoint', `Tor SOCKS port ${String(endpoint.port)} is not a TCP port`);
  }
  const host = endpoint.host.includes(':') && !endpoint.host.startsWith('[') ? `[${endpoint.host}]` : endpoint.host;
  return `socks5h://${encodeURIComponent(creds.username)}:${encodeURIComponent(creds.password)}@${host}:${endpoint.port}`;
}

export type TorTransportErrorCode = 'bad_socks_endpoint' | 'tor_unreachable' | 'foreign_socket' | 'bad_url' | 'timeout' | 'aborted';

export class TorTransportError extends Error {
  constructor(
    readonly code: TorTransportErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TorTransportError';
  }
}

/** Sockets created by any TorAgent; a request whose socket is not in here is stopped. */
const torSockets = new WeakSet<Socket>();

/** A SOCKS agent that remembers the sockets it made. One agent per request (fresh credentials). */
export class TorAgent extends SocksProxyAgent {
  readonly credentials: SocksCredentials;
  constructor(endpoint: SocksEndpoint, creds: SocksCredentials = freshCredentials(), timeoutMs?: number) {
    super(socksProxyUrl(endpoint, creds), timeoutMs === undefined ? {} : { timeout: timeoutMs });
    this.credentials = creds;
  }

  override async connect(req: http.ClientRequest, opts: Parameters<SocksProxyAgent['connect']>[1]): Promise<Socket> {
    const socket = (await super.connect(req, opts)) as Socket;
    torSockets.add(socket);
    return socket;
  }
}

/**
 * Opens one TCP connection to `url`'s host and port through Tor now, with these credentials
 * (for the circuit pool: the circuit gets built before a request needs it). For https the
 * TLS handshake happens here too. The socket counts as a Tor socket.
 */
export async function openTorConnection(endpoint: SocksEndpoint, creds: SocksCredentials, url: URL): Promise<Socket> {
  const secure = url.protocol === 'https:';
  const agent = new TorAgent(endpoint, creds);
  // socks-proxy-agent only touches the request to destroy it on a TLS error.
  const noRequest = { destroy: () => undefined } as unknown as http.ClientRequest;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const opts = { host, port: url.port ? Number(url.port) : secure ? 443 : 80, secureEndpoint: secure, ...(secure ? { servername: url.hostname } : {}) };
  try {
    return await agent.connect(noRequest, opts as Parameters<TorAgent['connect']>[1]);
  } catch (e) {
    throw new TorTransportError('tor_unreachable', `could not reach ${url.host} through Tor at ${endpoint.host}:${endpoint.port}: ${(e as Error).message}`);
  }
}

/** True if this socket was made by a TorAgent (exported for tests). */
export function isTorSocket(s: Socket | null | undefined): boolean {
  return !!s && torSockets.has(s);
}

export interface TorRequestOptions {
  socks: SocksEndpoint;
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  signal?: AbortSignal;
  /** Until the response headers arrive (default 120 s; Tor circuits can be slow to build). */
  timeoutMs?: number;
  /** Use these SOCKS credentials instead of fresh ones (same credentials → same circuit). */
  credentials?: SocksCredentials;
  /** Called with the agent before the request is sent (tests inspect the credentials). */
  onAgent?: (agent: TorAgent) => void;
  /** Send on this pre-built connection (circuitPool.ts) instead of opening one: used once, then closed. */
  pooled?: { socket: Socket; credentials: SocksCredentials };
}

export interface TorResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body stream; read it with `readAll` or iterate it. */
  body: http.IncomingMessage;
}

/** Sends one HTTP(S) request through Tor with a fresh circuit (or on `opts.pooled`, built earlier for it alone). */
export function torRequest(target: string | URL, opts: TorRequestOptions): Promise<TorResponse> {
  let url: URL;
  try {
    url = typeof target === 'string' ? new URL(target) : target;
  } catch {
    return Promise.reject(new TorTransportError('bad_url', `not a URL: ${String(target)}`));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return Promise.reject(new TorTransportError('bad_url', `only http and https URLs can be fetched over Tor, not ${url.protocol}`));
  }
  const pooled = opts.pooled;
  let agent: TorAgent | undefined;
  if (!pooled) {
    agent = new TorAgent(opts.socks, opts.credentials ?? freshCredentials(), opts.timeoutMs ?? 120_000);
    // agent-base decides TLS from the protocol; ClientRequest insists agent and URL agree.
    agent.protocol = url.protocol;
    opts.onAgent?.(agent);
  }
  const secure = url.protocol === 'https:';
  const body = typeof opts.body === 'string' ? Buffer.from(opts.body, 'utf8') : opts.body;
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (body !== undefined) headers['content-length'] = String(body.byteLength);

  return new Promise<TorResponse>((resolve, reject) => {
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    };
    const req = new http.ClientRequest({
      protocol: url.protocol,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : secure ? 443 : 80,
      path: url.pathname + url.search,
      method: opts.method ?? 'GET',
      headers,
      // A pooled connection: no agent, so Node sends `Connection: close` and the socket
      // serves this one request.
      ...(pooled ? { createConnection: () => pooled.socket } : { agent }),
      // agent-base reads these to decide on TLS and SNI.
      ...({ secureEndpoint: secure, servername: secure ? url.hostname : undefined } as object),
    });
    const timer = setTimeout(() => {
      fail(new TorTransportError('timeout', `no answer from ${url.host} over Tor within ${opts.timeoutMs ?? 120_000} ms`));
      req.destroy();
    }, opts.timeoutMs ?? 120_000);
    const onAbort = () => {
      fail(new TorTransportError('aborted', 'request cancelled'));
      req.destroy();
    };
    if (opts.signal) {
      if (opts.signal.aborted) {
        onAbort();
        return;
      }
      opts.signal.addEventListener('abort', onAbort, { once: true });
    }
    req.on('socket', (s: Socket) => {
      // Defence against a patched http stack handing us some other socket (see header).
      if (!isTorSocket(s)) {
        fail(new TorTransportError('foreign_socket', 'refusing to send: the connection was not made through Tor'));
        req.destroy();
        s.destroy();
      }
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      const socksFailure = /socks|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ETIMEDOUT|closed/i.test(`${e.code ?? ''} ${e.message}`);
      fail(
        socksFailure
          ? new TorTransportError('tor_unreachable', `could not reach ${url.host} through Tor at ${opts.socks.host}:${opts.socks.port}: ${e.message}`)
          : e,
      );
    });
    req.on('response', (res) => {
      if (settled) {
        res.resume();
        return;
      }
      settled = true;
      clearTimeout(timer);
      opts.signal?.addEventListener('abort', () => res.destroy(new TorTransportError('aborted', 'request cancelled')), { once: true });
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
    });
    req.end(body);
  });
}

/** Reads a whole response body (bounded). */
export async function readAll(stream: AsyncIterable<Buffer | string>, maxBytes = 16 * 1024 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    n += b.length;
    if (n > maxBytes) throw new Error(`response larger than ${maxBytes} bytes`);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

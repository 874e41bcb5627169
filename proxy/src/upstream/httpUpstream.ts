/**
 * Forwards one request to an OpenAI-compatible provider over node:http(s) with
 * keep-alive. Sends exactly: the provider's auth header (the proxy's own key),
 * content-type and accept (node adds host, content-length, connection). Keys
 * rotate round-robin and on 429.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export type UpstreamFailureKind = 'timeout' | 'unreachable' | 'server_error' | 'rate_limited';

/** A failure that is not the client's fault: the token stays retryable for the same request. */
export class UpstreamFailure extends Error {
  constructor(
    readonly kind: UpstreamFailureKind,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'UpstreamFailure';
  }
}

export interface UpstreamResponse {
  status: number;
  contentType: string;
  body: IncomingMessage;
  /** Stops reading and closes the upstream connection. */
  abort(): void;
}

export interface UpstreamTarget {
  name: string;
  baseUrl: string;
  apiKeys: readonly string[];
  authHeader: 'authorization' | 'api-key';
  timeoutMs: number;
  idleTimeoutMs: number;
}

export class HttpUpstream {
  private next = 0;
  private readonly url: URL;
  private readonly agent: HttpAgent;
  private readonly isHttps: boolean;
  /** Request options from the URL, resolved once (what node:http would derive from the URL on every call). */
  private readonly base: RequestOptions;

  constructor(readonly target: UpstreamTarget) {
    this.url = new URL(target.baseUrl.replace(/\/+$/, '') + '/chat/completions');
    this.isHttps = this.url.protocol === 'https:';
    const u = this.url;
    this.base = {
      protocol: u.protocol,
      hostname: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
      path: `${u.pathname}${u.search}`,
      method: 'POST',
      ...(u.port !== '' ? { port: Number(u.port) } : {}),
      ...(u.username || u.password ? { auth: `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` } : {}),
    };
    const agentOpts = { keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' as const };
    this.agent = this.isHttps ? new HttpsAgent(agentOpts) : new HttpAgent(agentOpts);
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * Resolves with the upstream response once headers arrive (any status except
   * 429, which moves on to the next key). Rejects with UpstreamFailure.
   */
  async send(body: Record<string, unknown>, stream: boolean, signal: AbortSignal): Promise<UpstreamResponse> {
    const payload = Buffer.from(JSON.stringify(body));
    const keys = this.target.apiKeys.length > 0 ? this.target.apiKeys : [undefined];
    const start = this.next++ % keys.length;
    let retryAfter: number | undefined;
    for (let i = 0; i < keys.length; i++) {
      const res = await this.once(payload, stream, keys[(start + i) % keys.length], signal);
      if (res.status !== 429) return res;
      const ra = Number(res.body.headers['retry-after']);
      if (Number.isFinite(ra)) retryAfter = retryAfter === undefined ? ra : Math.min(retryAfter, ra);
      res.abort();
    }
    throw new UpstreamFailure('rate_limited', `provider ${this.target.name} is rate limiting every configured key`, retryAfter);
  }

  private once(payload: Buffer, stream: boolean, key: string | undefined, signal: AbortSignal): Promise<UpstreamResponse> {
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      accept: stream ? 'text/event-stream' : 'application/json',
      'content-length': payload.length,
    };
    if (key !== undefined) {
      if (this.target.authHeader === 'api-key') headers['api-key'] = key;
      else headers.authorization = `Bearer ${key}`;
    }
    return new Promise<UpstreamResponse>((resolve, reject) => {
      if (signal.aborted) return reject(new UpstreamFailure('unreachable', 'request aborted before it was sent'));
      const req = (this.isHttps ? httpsRequest : httpRequest)({ ...this.base, agent: this.agent, headers });
      let settled = false;
      const fail = (f: UpstreamFailure) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        req.destroy();
        reject(f);
      };
      const timer = setTimeout(() => fail(new UpstreamFailure('timeout', `provider ${this.target.name} did not answer within ${this.target.timeoutMs} ms`)), this.target.timeoutMs);
      const onAbort = () => fail(new UpstreamFailure('unreachable', 'client went away'));
      signal.addEventListener('abort', onAbort, { once: true });
      req.once('error', (e: NodeJS.ErrnoException) => fail(new UpstreamFailure('unreachable', `provider ${this.target.name} unreachable (${e.code ?? 'connection error'})`)));
      req.once('response', (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        clearTimeout(timer);
        // From now on silence longer than idleTimeoutMs ends the body with an error.
        req.setTimeout(this.target.idleTimeoutMs, () => req.destroy(new Error('upstream idle timeout')));
        const abort = () => {
          signal.removeEventListener('abort', onAbort);
          req.destroy();
          res.destroy();
        };
        signal.removeEventListener('abort', onAbort);
        signal.addEventListener('abort', abort, { once: true });
        res.once('close', () => signal.removeEventListener('abort', abort));
        resolve({ status: res.statusCode ?? 502, contentType: String(res.headers['content-type'] ?? ''), body: res, abort });
      });
      req.end(payload);
    });
  }
}

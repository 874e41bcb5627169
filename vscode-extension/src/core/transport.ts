/**
 * One shape for "send an HTTP request somehow": over Tor (a circuit of its own each call:
 * pre-built by a circuit pool for onion origins, else built at send time) or over
 * the clearnet (issuance-side calls only, when the user chose that). Callers that must never
 * touch the clearnet (redemption, the key-consistency check) take a `TorTransport`, whose
 * type cannot be satisfied by the clearnet one.
 */
import http from 'node:http';
import https from 'node:https';
import { CircuitPool, type CircuitPoolOptions } from './circuitPool.js';
import { openTorConnection, torRequest, type SocksEndpoint, type TorResponse } from './torTransport.js';

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /**
   * Anonymous requests on the critical path (chat, models) may go on a pre-built circuit
   * from the origin's pool (TorTransport only). Requests without it — identity calls above
   * all — never touch a pool, so no pool's schedule starts or runs because of them.
   */
  prebuilt?: boolean;
}

export type HttpResponse = TorResponse;

export interface Transport {
  readonly kind: 'tor' | 'clearnet';
  request(url: string, opts?: RequestOptions): Promise<HttpResponse>;
}

export interface TorTransport extends Transport {
  readonly kind: 'tor';
  /** Resolves the SOCKS endpoint per request (Tor may be restarted on another port). */
  readonly socks: () => SocksEndpoint;
  /** The circuit pool of `url`'s origin, if that origin is pooled and was requested before. */
  poolFor?(url: string): CircuitPool | undefined;
  /** Closes every pooled connection and stops the pools' schedules. */
  close?(): void;
}

export interface TorTransportOptions {
  /**
   * Pre-built single-use circuits (circuitPool.ts) for onion origins: default on with the
   * pool's defaults; `false` for a fresh circuit built at send time, always.
   */
  pool?: CircuitPoolOptions | false;
  /** Pool clearnet origins (reached through an exit) too; default only `.onion` ones, whose
   * rendezvous circuit is what a request would wait for. */
  poolClearnet?: boolean;
}

export function torTransport(socks: SocksEndpoint | (() => SocksEndpoint), opts: TorTransportOptions = {}): TorTransport {
  const get = typeof socks === 'function' ? socks : () => socks;
  const pools = new Map<string, CircuitPool>();
  const poolOpts = opts.pool;
  const pooled = (url: URL) =>
    poolOpts !== false && (url.protocol === 'http:' || url.protocol === 'https:') && (opts.poolClearnet === true || url.hostname.endsWith('.onion'));
  const poolOf = (url: URL): CircuitPool | undefined => {
    if (!pooled(url)) return undefined;
    let pool = pools.get(url.origin);
    if (!pool) {
      pool = new CircuitPool((creds) => openTorConnection(get(), creds, url), poolOpts || {});
      pools.set(url.origin, pool);
    }
    return pool;
  };
  return {
    kind: 'tor',
    socks: get,
    request: (target, ropts = {}) => {
      let url: URL | undefined;
      try {
        url = new URL(target);
      } catch {
        url = undefined; // torRequest reports the bad URL
      }
      const { prebuilt, ...rest } = ropts;
      const conn = prebuilt === true && url ? poolOf(url)?.take() : undefined;
      return torRequest(target, { ...rest, socks: get(), ...(conn ? { pooled: conn } : {}) });
    },
    poolFor: (target) => pools.get(new URL(target).origin),
    close: () => {
      for (const p of pools.values()) p.close();
      pools.clear();
    },
  };
}

/** Plain HTTP(S), for issuance-side calls only (account, purchase, issuance) when configured. */
export function clearnetTransport(): Transport {
  return {
    kind: 'clearnet',
    request: (target, opts = {}) =>
      new Promise<HttpResponse>((resolve, reject) => {
        const url = new URL(target);
        const mod = url.protocol === 'https:' ? https : http;
        const body = typeof opts.body === 'string' ? Buffer.from(opts.body, 'utf8') : opts.body;
        const headers: Record<string, string> = { ...(opts.headers ?? {}) };
        if (body !== undefined) headers['content-length'] = String(body.byteLength);
        const req = mod.request(url, { method: opts.method ?? 'GET', headers, signal: opts.signal, timeout: opts.timeoutMs ?? 60_000 });
        req.on('timeout', () => req.destroy(new Error(`no answer from ${url.host} within ${opts.timeoutMs ?? 60_000} ms`)));
        req.on('error', reject);
        req.on('response', (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }));
        req.end(body);
      }),
  };
}

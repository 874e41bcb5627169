/**
 * One shape for "send an HTTP request somehow": over Tor (a fresh circuit each call) or over
 * the clearnet (issuance-side calls only, when the user chose that). Callers that must never
 * touch the clearnet (redemption, the key-consistency check) take a `TorTransport`, whose
 * type cannot be satisfied by the clearnet one.
 */
import http from 'node:http';
import https from 'node:https';
import { torRequest, type SocksEndpoint, type TorResponse } from './torTransport.js';

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  signal?: AbortSignal;
  timeoutMs?: number;
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
}

export function torTransport(socks: SocksEndpoint | (() => SocksEndpoint)): TorTransport {
  const get = typeof socks === 'function' ? socks : () => socks;
  return {
    kind: 'tor',
    socks: get,
    request: (url, opts = {}) => torRequest(url, { ...opts, socks: get() }),
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

/**
 * Finding Tor: an existing SOCKS port (a system tor on 9050, Tor Browser on 9150, or one
 * configured), recognised by a real SOCKS5 greeting — an open port that is not SOCKS5 is
 * not mistaken for Tor.
 */
import net from 'node:net';
import type { SocksEndpoint } from './torTransport.js';

export const DEFAULT_SOCKS_CANDIDATES: readonly SocksEndpoint[] = [
  { host: '127.0.0.1', port: 9050 },
  { host: '127.0.0.1', port: 9150 },
];

/** True if `endpoint` answers a SOCKS5 greeting offering username/password auth (what Tor accepts). */
export function speaksSocks5(endpoint: SocksEndpoint, timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: endpoint.host, port: endpoint.port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('error', () => done(false));
    s.once('connect', () => s.write(Buffer.from([0x05, 0x02, 0x00, 0x02])));
    s.once('data', (d: Buffer) => done(d.length >= 2 && d[0] === 0x05 && (d[1] === 0x00 || d[1] === 0x02)));
  });
}

/** The first candidate that speaks SOCKS5, or undefined. */
export async function detectSocks(candidates: readonly SocksEndpoint[] = DEFAULT_SOCKS_CANDIDATES, timeoutMs = 1500): Promise<SocksEndpoint | undefined> {
  for (const c of candidates) if (await speaksSocks5(c, timeoutMs)) return c;
  return undefined;
}

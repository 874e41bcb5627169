/** A minimal SOCKS5 (RFC 1928/1929) client, for readiness probes and raw connections through tor. */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

class ByteReader {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private error: Error | undefined;
  constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    const fail = (e: Error) => {
      this.error = e;
      this.waiter?.();
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('connection closed')));
  }
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.error) throw this.error;
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = undefined;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  rest(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }
}

const SOCKS_REPLIES: Record<number, string> = {
  1: 'general failure',
  2: 'not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
  0xf0: 'onion service descriptor not found',
  0xf1: 'onion service descriptor invalid',
  0xf2: 'onion service introduction failed',
  0xf3: 'onion service rendezvous failed',
  0xf4: 'onion service missing client authorization',
  0xf5: 'onion service wrong client authorization',
  0xf6: 'onion address invalid',
  0xf7: 'onion service introduction timed out',
};

/**
 * Open a TCP connection to host:port through a SOCKS5 proxy with username/password
 * authentication; the host name is resolved by the proxy (as with socks5h).
 */
export async function socks5Connect(opts: {
  socksPort: number;
  host: string;
  port: number;
  username: string;
  password: string;
  timeoutMs?: number;
}): Promise<{ socket: net.Socket; leftover: Buffer }> {
  const sock = net.connect({ host: '127.0.0.1', port: opts.socksPort });
  const timer = setTimeout(() => sock.destroy(new Error(`SOCKS connect timeout after ${opts.timeoutMs ?? 15_000} ms`)), opts.timeoutMs ?? 15_000);
  const reader = new ByteReader(sock);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.write(Buffer.from([5, 1, 2]));
    const m = await reader.read(2);
    if (m[0] !== 5 || m[1] !== 2) throw new Error(`SOCKS: username/password auth refused (${m.toString('hex')})`);
    const u = Buffer.from(opts.username);
    const p = Buffer.from(opts.password);
    sock.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
    const a = await reader.read(2);
    if (a[1] !== 0) throw new Error('SOCKS: authentication failed');
    const h = Buffer.from(opts.host);
    const req = Buffer.concat([Buffer.from([5, 1, 0, 3, h.length]), h, Buffer.from([opts.port >> 8, opts.port & 0xff])]);
    sock.write(req);
    const r = await reader.read(4);
    if (r[1] !== 0) {
      const code = r[1]!;
      throw new Error(`SOCKS: ${SOCKS_REPLIES[code] ?? 'error'} (0x${code.toString(16)})`);
    }
    const atyp = r[3];
    const addrLen = atyp === 1 ? 4 : atyp === 4 ? 16 : (await reader.read(1))[0]!;
    await reader.read(addrLen + 2);
    clearTimeout(timer);
    sock.removeAllListeners('data');
    sock.removeAllListeners('error');
    sock.removeAllListeners('close');
    return { socket: sock, leftover: reader.rest() };
  } catch (e) {
    clearTimeout(timer);
    sock.destroy();
    throw e;
  }
}

/** GET http://host:port/path through SOCKS (socks5h); resolves with the raw response text. */
export async function socksHttpGet(socksPort: number, host: string, port: number, urlPath: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const { socket, leftover } = await socks5Connect({
    socksPort,
    host,
    port,
    username: randomBytes(12).toString('hex'),
    password: randomBytes(12).toString('hex'),
    timeoutMs,
  });
  return await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [leftover];
    const timer = setTimeout(() => socket.destroy(new Error('HTTP response timeout')), Math.max(1, deadline - Date.now()));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    socket.write(`GET ${urlPath} HTTP/1.0\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`);
  });
}

// ---------------------------------------------------------------------------

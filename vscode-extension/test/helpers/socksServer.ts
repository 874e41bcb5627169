/**
 * A minimal SOCKS5 server on loopback (RFC 1928 + RFC 1929 username/password) that records
 * what each client asked for and relays to 127.0.0.1 targets — a real socket peer for the
 * unit tests of the Tor transport (the Tor-network integration test uses real tor).
 */
import net from 'node:net';

export interface SocksRecord {
  methods: number[];
  username?: string;
  password?: string;
  /** 1 = IPv4, 3 = domain name, 4 = IPv6. */
  atyp: number;
  host: string;
  port: number;
}

export interface TestSocksServer {
  port: number;
  records: SocksRecord[];
  /** Hosts answered with "host unreachable" instead of relayed (e.g. .onion names). */
  close(): Promise<void>;
}

export async function startSocksServer(opts: { relay?: (host: string, port: number) => { host: string; port: number } | undefined } = {}): Promise<TestSocksServer> {
  const records: SocksRecord[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
    c.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let stage: 'greet' | 'auth' | 'request' | 'relay' = 'greet';
    const rec: Partial<SocksRecord> = {};
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (stage === 'greet') {
          if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
          rec.methods = [...buf.subarray(2, 2 + buf[1]!)];
          buf = buf.subarray(2 + buf[1]!);
          const useAuth = rec.methods.includes(2);
          c.write(Buffer.from([5, useAuth ? 2 : 0]));
          stage = useAuth ? 'auth' : 'request';
        } else if (stage === 'auth') {
          if (buf.length < 2) return;
          const ulen = buf[1]!;
          if (buf.length < 3 + ulen) return;
          const plen = buf[2 + ulen]!;
          if (buf.length < 3 + ulen + plen) return;
          rec.username = buf.subarray(2, 2 + ulen).toString();
          rec.password = buf.subarray(3 + ulen, 3 + ulen + plen).toString();
          buf = buf.subarray(3 + ulen + plen);
          c.write(Buffer.from([1, 0]));
          stage = 'request';
        } else if (stage === 'request') {
          if (buf.length < 5) return;
          const atyp = buf[3]!;
          let host: string;
          let off: number;
          if (atyp === 1) {
            if (buf.length < 10) return;
            host = [...buf.subarray(4, 8)].join('.');
            off = 8;
          } else if (atyp === 3) {
            const n = buf[4]!;
            if (buf.length < 5 + n + 2) return;
            host = buf.subarray(5, 5 + n).toString();
            off = 5 + n;
          } else {
            if (buf.length < 22) return;
            host = buf.subarray(4, 20).toString('hex');
            off = 20;
          }
          const port = buf.readUInt16BE(off);
          buf = buf.subarray(off + 2);
          records.push({ methods: rec.methods ?? [], atyp, host, port, ...(rec.username !== undefined ? { username: rec.username, password: rec.password! } : {}) });
          const to = opts.relay ? opts.relay(host, port) : host === '127.0.0.1' ? { host, port } : undefined;
          const reply = (code: number) => c.write(Buffer.from([5, code, 0, 1, 127, 0, 0, 1, 0, 0]));
          if (!to) {
            reply(4); // host unreachable
            c.end();
            return;
          }
          stage = 'relay';
          c.off('data', onData);
          const up = net.connect(to.port, to.host, () => {
            reply(0);
            if (buf.length) up.write(buf);
            c.pipe(up).pipe(c);
          });
          sockets.add(up);
          up.on('close', () => sockets.delete(up));
          up.on('error', () => {
            reply(5);
            c.destroy();
          });
          return;
        } else return;
      }
    };
    c.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    records,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

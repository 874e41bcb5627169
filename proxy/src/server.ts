/**
 * Listening and graceful shutdown: stop accepting, let in-flight requests
 * finish (idle keep-alive connections are closed at once, busy ones after
 * their response), cut what is left after the grace period, then close the
 * role modules and connections.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type Koa from 'koa';

export interface RunningServer {
  server: Server;
  url: string;
  port: number;
  /** Resolves when every in-flight request has finished (or the grace period ran out). */
  close(graceMs: number): Promise<void>;
}

/**
 * A redemption request carries one token per credit in its PrivateToken credential (~480
 * bytes each, up to `maxTokensPerRequest` = 64 by default) plus the abuse tokens: more
 * than Node's default 16 KiB of headers.
 */
export const MAX_HEADER_BYTES = 64 * 1024;

export async function listen(app: Koa, host: string, port: number): Promise<RunningServer> {
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, app.callback());
  // Node closes idle keep-alive sockets after this; slightly above typical load-balancer idle timeouts.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  let closing: Promise<void> | undefined;
  return {
    server,
    port: addr.port,
    url: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${addr.port}`,
    close(graceMs: number) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        // Keep-alive connections hold close() open once their request is done: close them as they become idle.
        const sweep = setInterval(() => server.closeIdleConnections(), 50);
        sweep.unref();
        server.close(() => {
          clearTimeout(timer);
          clearInterval(sweep);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

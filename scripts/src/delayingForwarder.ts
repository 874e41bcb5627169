/**
 * A TCP forwarder that delays every chunk, in each direction, by a one-way delay (plus a
 * bounded random jitter) while keeping the byte order: latency for a loopback Tor network,
 * where `tc netem` is not available. Each relay's advertised ORPort is served by one of
 * these in front of the port tor really listens on, so every link between two tor
 * processes passes exactly one forwarder (the accepting relay's).
 */
import net from 'node:net';

export interface DelayOptions {
  /** One-way delay added to every chunk, in ms. */
  delayMs: number;
  /** Extra random delay per chunk, uniform in [0, jitterMs] (order is kept regardless). */
  jitterMs?: number;
}

/** Queued writes to one socket, each released at its due time, strictly in order. */
class DelayedPipe {
  private readonly queue: Array<{ due: number; chunk: Buffer | null }> = [];
  private lastDue = 0;
  private timer: NodeJS.Timeout | undefined;
  private queuedBytes = 0;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly opts: DelayOptions,
  ) {
    from.on('data', (d: Buffer) => this.push(d));
    from.on('end', () => this.push(null));
  }

  private push(chunk: Buffer | null): void {
    const jitter = Math.random() * (this.opts.jitterMs ?? 0);
    // Never earlier than the previous chunk: jitter must not reorder a byte stream.
    this.lastDue = Math.max(this.lastDue, Date.now() + this.opts.delayMs + jitter);
    this.queue.push({ due: this.lastDue, chunk });
    if (chunk) {
      this.queuedBytes += chunk.length;
      // Bound memory: stop reading while 1 MiB waits (TCP back-pressure does the rest).
      if (this.queuedBytes > 1 << 20) this.from.pause();
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => this.pump(), Math.max(0, this.queue[0]!.due - Date.now()));
  }

  private pump(): void {
    this.timer = undefined;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) {
      const { chunk } = this.queue.shift()!;
      if (this.to.destroyed) return;
      if (chunk === null) {
        this.to.end();
      } else {
        this.queuedBytes -= chunk.length;
        this.to.write(chunk);
      }
    }
    if (this.queuedBytes <= 1 << 19 && this.from.isPaused()) this.from.resume();
    this.schedule();
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }
}

export class DelayingForwarder {
  /** Connections accepted so far. */
  connections = 0;
  private readonly sockets = new Set<net.Socket>();

  private constructor(private readonly server: net.Server) {}

  /** Listen on host:listenPort and forward each connection to host:targetPort. */
  static async listen(host: string, listenPort: number, targetPort: number, opts: DelayOptions): Promise<DelayingForwarder> {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    const fwd = new DelayingForwarder(server);
    server.on('connection', (inbound) => fwd.accept(inbound, host, targetPort, opts));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPort, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return fwd;
  }

  private accept(inbound: net.Socket, host: string, targetPort: number, opts: DelayOptions): void {
    this.connections++;
    const outbound = net.connect({ host, port: targetPort, allowHalfOpen: true });
    inbound.setNoDelay(true);
    outbound.setNoDelay(true);
    const pipes = [new DelayedPipe(inbound, outbound, opts), new DelayedPipe(outbound, inbound, opts)];
    for (const s of [inbound, outbound]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', (hadError) => {
        this.sockets.delete(s);
        // A clean close needs nothing: each side's FIN travels, delayed, through its pipe.
        if (!hadError) return;
        for (const p of pipes) p.close();
        inbound.destroy();
        outbound.destroy();
      });
    }
    outbound.once('connect', () => inbound.resume());
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * LOCAL STAND-IN UPSTREAM — not a language model. An OpenAI-compatible
 * `/v1/chat/completions` (JSON and real Server-Sent-Events streaming) that
 * answers every request with the same canned text. Used by the embedded demo
 * (so it runs without any provider account) and by tests and benchmarks, which
 * also use its recording (bodies and headers received) and its failure modes.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const STAND_IN_TEXT = 'This answer comes from the LLM-Tor local stand-in upstream: canned text, not a language model.';

export type StandInFailure =
  | { kind: 'status'; status: number; retryAfterSeconds?: number }
  | { kind: 'hang' }
  | { kind: 'close' }
  /** Stream some chunks, then drop the connection. */
  | { kind: 'close-mid-stream'; afterChunks: number };

export interface StandInOptions {
  port?: number;
  host?: string;
  /** Delay between streamed chunks (0 = as fast as possible). */
  chunkDelayMs?: number;
  /** Number of content chunks a streamed answer has (the canned text is split into them). */
  chunks?: number;
  /** Keep a copy of every request (bodies and headers); off in benchmarks. */
  record?: boolean;
  text?: string;
  /** How long a non-streamed answer takes (a provider thinking before it answers). */
  answerDelayMs?: number;
}

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  rawBody: string;
  body: unknown;
}

export class LocalStandInUpstream {
  readonly received: ReceivedRequest[] = [];
  /** Streams whose reader went away before the last chunk. */
  streamsAbortedByReader = 0;
  streamsCompleted = 0;
  requests = 0;
  private failures: StandInFailure[] = [];
  private sticky: StandInFailure | undefined;
  /** API keys answered with 429 (to exercise key rotation). */
  readonly rateLimitedKeys = new Set<string>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private seq = 0;
  private readonly opts: Required<Omit<StandInOptions, 'port' | 'host'>>;

  constructor(opts: StandInOptions = {}) {
    this.opts = { chunkDelayMs: opts.chunkDelayMs ?? 0, chunks: opts.chunks ?? 8, record: opts.record ?? true, text: opts.text ?? STAND_IN_TEXT, answerDelayMs: opts.answerDelayMs ?? 0 };
  }

  /** Fails the next `times` requests this way. */
  failNext(f: StandInFailure, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(f);
  }
  /** Fails every request until cleared (`undefined`). */
  failAlways(f: StandInFailure | undefined): void {
    this.sticky = f;
  }
  setChunkDelay(ms: number, chunks?: number): void {
    this.opts.chunkDelayMs = ms;
    if (chunks !== undefined) this.opts.chunks = chunks;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<{ url: string; baseUrl: string }> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    const { port: p } = this.server.address() as AddressInfo;
    return { url: `http://${host}:${p}`, baseUrl: `http://${host}:${p}/v1` };
  }

  get baseUrl(): string {
    const a = this.server?.address() as AddressInfo | undefined;
    if (!a) throw new Error('stand-in is not listening');
    return `http://127.0.0.1:${a.port}/v1`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'stand-in', object: 'model', created: 0, owned_by: 'llmtor-stand-in' }] }));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error' } }));
      return;
    }
    this.requests++;
    let body: unknown;
    try {
      body = JSON.parse(rawBody);
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'invalid JSON', type: 'invalid_request_error' } }));
      return;
    }
    if (this.opts.record) this.received.push({ headers: req.headers, rawBody, body });
    const auth = req.headers.authorization?.replace(/^Bearer /, '');
    if (auth && this.rateLimitedKeys.has(auth)) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ error: { message: 'rate limited', type: 'rate_limit_error' } }));
      return;
    }
    const failure = this.failures.shift() ?? this.sticky;
    if (failure?.kind === 'status') {
      const h: Record<string, string> = { 'content-type': 'application/json' };
      if (failure.retryAfterSeconds !== undefined) h['retry-after'] = String(failure.retryAfterSeconds);
      res.writeHead(failure.status, h);
      res.end(JSON.stringify({ error: { message: `stand-in failure ${failure.status}`, type: 'server_error' } }));
      return;
    }
    if (failure?.kind === 'hang') return; // never answers; the proxy's timeout must fire
    if (failure?.kind === 'close') {
      req.socket.destroy();
      return;
    }
    const o = (body ?? {}) as { model?: unknown; stream?: unknown };
    const model = typeof o.model === 'string' ? o.model : 'stand-in';
    const id = `chatcmpl-standin-${++this.seq}`;
    const created = Math.floor(Date.now() / 1000);
    if (o.stream === true) {
      await this.stream(res, id, created, model, failure?.kind === 'close-mid-stream' ? failure.afterChunks : undefined);
      return;
    }
    const text = this.opts.text;
    if (this.opts.answerDelayMs > 0) await new Promise((r) => setTimeout(r, this.opts.answerDelayMs));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: text.split(' ').length, total_tokens: 1 + text.split(' ').length },
      }),
    );
  }

  private async stream(res: ServerResponse, id: string, created: number, model: string, closeAfter: number | undefined): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let gone = false;
    res.once('close', () => {
      if (!res.writableFinished) gone = true;
    });
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
    const parts = splitInto(this.opts.text, this.opts.chunks);
    const delay = this.opts.chunkDelayMs;
    res.write(chunk({ role: 'assistant', content: '' }, null));
    for (let i = 0; i < parts.length; i++) {
      if (closeAfter !== undefined && i >= closeAfter) {
        // Let the chunks already written reach the reader first.
        await new Promise((r) => setTimeout(r, 30));
        res.socket?.destroy();
        return;
      }
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      if (gone) {
        this.streamsAbortedByReader++;
        return;
      }
      res.write(chunk({ content: parts[i] }, null));
    }
    res.write(chunk({}, 'stop'));
    res.end('data: [DONE]\n\n');
    this.streamsCompleted++;
  }
}

function splitInto(text: string, n: number): string[] {
  const words = text.split(/(?<= )/);
  const out: string[] = [];
  const per = Math.max(1, Math.ceil(words.length / n));
  for (let i = 0; i < words.length; i += per) out.push(words.slice(i, i + per).join(''));
  while (out.length < n) out.push('');
  return out;
}

/** Starts a stand-in; convenience for the demo and tests. */
export async function startLocalStandInUpstream(opts: StandInOptions = {}): Promise<LocalStandInUpstream & { baseUrl: string }> {
  const s = new LocalStandInUpstream(opts);
  await s.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  return s as LocalStandInUpstream & { baseUrl: string };
}

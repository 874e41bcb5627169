/**
 * The anonymous side (docs/api-redemption.md), reached only through a TorTransport:
 * models with prices, streamed chat completions paid with PrivateToken credentials plus the
 * two abuse tokens, revocation of a transient abuse token, and the issuer directory as
 * everyone sees it (for the key-consistency check).
 *
 * Nothing here sends anything identifying: no account key, no client name beyond a generic
 * User-Agent, no `user` field.
 */
import { formatAuthorization, toBase64Url } from '@llmtor/protocol';
import { z } from 'zod';
import { readJson, serverError, ServerError } from './apiErrors.js';
import { SseParser } from './sse.js';
import { readAll } from './torTransport.js';
import type { TorTransport } from './transport.js';

/** Every Tor Browser–style client sends the same thing; nothing about this machine. */
export const GENERIC_USER_AGENT = 'llmtor-client';

const modelsSchema = z.object({
  data: z.array(
    z
      .object({
        id: z.string().min(1),
        owned_by: z.string().optional(),
        llmtor: z
          .object({ price_credits: z.number().int().min(1), bytes_per_credit: z.number().int().min(1).optional(), max_output_tokens: z.number().int().optional() })
          .passthrough()
          .optional(),
      })
      .passthrough(),
  ),
});

export interface ModelInfo {
  id: string;
  priceCredits: number;
  /** Request bytes one price unit covers (the server charges price × ceil(bytes / this)). */
  bytesPerCredit: number;
  maxOutputTokens?: number;
}

/** Credits (= tokens) a request body of `bodyBytes` costs on `model` (the server's formula). */
export function creditsFor(model: Pick<ModelInfo, 'priceCredits' | 'bytesPerCredit'>, bodyBytes: number): number {
  return model.priceCredits * Math.max(1, Math.ceil(bodyBytes / model.bytesPerCredit));
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequestBody {
  model: string;
  messages: ChatMessage[];
  stream: true;
  temperature?: number;
  max_tokens?: number;
}

export interface AbuseCredentials {
  permanent: Uint8Array;
  transient: Uint8Array;
}

export interface ChatResult {
  content: string;
  finishReason: string | undefined;
  creditsSpent: number | undefined;
  replayed: boolean;
}

export function abuseHeader(a: AbuseCredentials): string {
  return `permanent=${toBase64Url(a.permanent)}, transient=${toBase64Url(a.transient)}`;
}

export class RedemptionApi {
  constructor(
    private readonly baseUrl: string,
    private readonly tor: TorTransport,
  ) {}

  url(path: string): string {
    return new URL(path, this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`).toString();
  }

  async models(signal?: AbortSignal): Promise<ModelInfo[]> {
    const res = await this.tor.request(this.url('/v1/models'), { headers: { accept: 'application/json', 'user-agent': GENERIC_USER_AGENT }, prebuilt: true, ...(signal ? { signal } : {}) });
    const parsed = modelsSchema.parse(await readJson(res, 'listing models'));
    return parsed.data.map((m) => {
      const info: ModelInfo = { id: m.id, priceCredits: m.llmtor?.price_credits ?? 1, bytesPerCredit: m.llmtor?.bytes_per_credit ?? 30_000 };
      if (m.llmtor?.max_output_tokens !== undefined) info.maxOutputTokens = m.llmtor.max_output_tokens;
      return info;
    });
  }

  /** The issuer directory fetched over a fresh Tor circuit (what everyone is shown). */
  async directory(): Promise<unknown> {
    const res = await this.tor.request(this.url('/.well-known/private-token-issuer-directory'), {
      headers: { accept: 'application/private-token-issuer-directory, application/json', 'user-agent': GENERIC_USER_AGENT },
    });
    return readJson(res, 'fetching the issuer directory over Tor');
  }

  /**
   * One streamed chat completion. `body` is the exact JSON text sent (the tokens were
   * counted for its byte length; a retry must send the same bytes to get the same answer).
   */
  async chat(
    body: string,
    tokens: readonly Uint8Array[],
    abuse: AbuseCredentials | undefined,
    opts: { onDelta?: (text: string) => void; signal?: AbortSignal } = {},
  ): Promise<ChatResult> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'text/event-stream, application/json',
      'user-agent': GENERIC_USER_AGENT,
      authorization: formatAuthorization(tokens),
    };
    if (abuse) headers['llmtor-abuse'] = abuseHeader(abuse);
    // On a pre-built single-use circuit when the pool has one (circuitPool.ts).
    const res = await this.tor.request(this.url('/v1/chat/completions'), { method: 'POST', headers, body, prebuilt: true, ...(opts.signal ? { signal: opts.signal } : {}) });
    if (res.status !== 200) throw await serverError(res, 'chat');
    const spentHeader = res.headers['llmtor-credits-spent'];
    const result: ChatResult = {
      content: '',
      finishReason: undefined,
      creditsSpent: typeof spentHeader === 'string' && /^\d+$/.test(spentHeader) ? Number(spentHeader) : undefined,
      replayed: res.headers['llmtor-replay'] === 'true',
    };
    const type = String(res.headers['content-type'] ?? '');
    if (!type.startsWith('text/event-stream')) {
      // A non-streamed answer (e.g. a cached refusal): the OpenAI JSON shape.
      const json = JSON.parse((await readAll(res.body)).toString('utf8')) as { choices?: { message?: { content?: string }; finish_reason?: string }[] };
      result.content = json.choices?.[0]?.message?.content ?? '';
      result.finishReason = json.choices?.[0]?.finish_reason;
      if (result.content) opts.onDelta?.(result.content);
      return result;
    }
    const parser = new SseParser();
    let done = false;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      for (const ev of parser.push(chunk)) {
        if (ev.data === '[DONE]') {
          done = true;
          continue;
        }
        let json: { choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[]; error?: { message?: string; code?: string } };
        try {
          json = JSON.parse(ev.data);
        } catch {
          continue;
        }
        if (json.error) throw new ServerError(502, json.error.code ?? 'stream_error', `chat: ${json.error.message ?? 'the stream ended with an error'}`);
        const choice = json.choices?.[0];
        const delta = choice?.delta?.content;
        if (delta) {
          result.content += delta;
          opts.onDelta?.(delta);
        }
        if (choice?.finish_reason) result.finishReason = choice.finish_reason;
      }
    }
    parser.end();
    if (!done && result.finishReason === undefined) throw new ServerError(502, 'stream_cut', 'chat: the answer stream ended early (connection lost); retrying the same request gets the same answer');
    return result;
  }

  /** Revokes a transient abuse token (for instance after it was stolen) by presenting it over Tor. */
  async revokeTransient(transient: Uint8Array): Promise<void> {
    const res = await this.tor.request(this.url('/v1/abuse/revoke'), {
      method: 'POST',
      headers: { 'llmtor-abuse': `transient=${toBase64Url(transient)}`, accept: 'application/json', 'user-agent': GENERIC_USER_AGENT, 'content-type': 'application/json' },
      body: '{}',
    });
    if (res.status < 200 || res.status >= 300) throw await serverError(res, 'revoking the transient abuse token');
    await readAll(res.body, 64 * 1024);
  }
}

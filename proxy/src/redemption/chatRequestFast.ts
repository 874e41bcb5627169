/**
 * Hand-written fast path for `chatRequestSchema` (chatRequest.ts) on the shapes
 * that make up nearly all traffic: text chats (string or text-part content,
 * user image parts, assistant tool calls, tool results) with the scalar
 * sampling options. It returns exactly what `chatRequestSchema.parse` returns
 * (same allowlist, same key order, same values) or `undefined` when the input
 * is outside what it handles or is invalid — the caller then runs zod, which
 * has the final word and writes the error message. It never accepts what zod
 * rejects (property test: test/redemption/chatRequestFast.test.ts).
 *
 * Fields it leaves to zod (returns undefined when present): `logit_bias`,
 * `response_format`, `tools`, `tool_choice`.
 */
import type { ChatRequest } from './chatRequest.js';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown, min = 0, max = Infinity): v is string => typeof v === 'string' && v.length >= min && v.length <= max;
const isNum = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && !Number.isNaN(v) && v >= min && v <= max;
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const has = (o: Obj, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Sentinel: invalid or not handled here. */
const NO = Symbol('no');

function textParts(v: unknown, allowImage: boolean, allowRefusal: boolean, min: number): unknown[] | typeof NO {
  if (!Array.isArray(v) || v.length < min) return NO;
  const out = new Array<unknown>(v.length);
  for (let i = 0; i < v.length; i++) {
    const p = v[i] as unknown;
    if (!isObj(p)) return NO;
    const t = p.type;
    if (t === 'text') {
      if (!isStr(p.text)) return NO;
      out[i] = { type: 'text', text: p.text };
    } else if (t === 'image_url' && allowImage) {
      const iu = p.image_url;
      if (!isObj(iu) || !isStr(iu.url, 1)) return NO;
      const img: Obj = { url: iu.url };
      if (has(iu, 'detail')) {
        const d = iu.detail;
        if (d !== 'auto' && d !== 'low' && d !== 'high') return NO;
        img.detail = d;
      }
      out[i] = { type: 'image_url', image_url: img };
    } else if (t === 'refusal' && allowRefusal) {
      if (!isStr(p.refusal)) return NO;
      out[i] = { type: 'refusal', refusal: p.refusal };
    } else return NO;
  }
  return out;
}

/** z.union([z.string(), z.array(textPart).min(1)]) */
function textContent(v: unknown): unknown {
  if (typeof v === 'string') return v;
  return textParts(v, false, false, 1);
}

function toolCalls(v: unknown): unknown[] | typeof NO {
  if (!Array.isArray(v) || v.length > 128) return NO;
  const out = new Array<unknown>(v.length);
  for (let i = 0; i < v.length; i++) {
    const c = v[i] as unknown;
    if (!isObj(c) || !isStr(c.id, 1, 200) || c.type !== 'function') return NO;
    const f = c.function;
    if (!isObj(f) || !isStr(f.name, 1, 200) || !isStr(f.arguments)) return NO;
    out[i] = { id: c.id, type: 'function', function: { name: f.name, arguments: f.arguments } };
  }
  return out;
}

function message(m: unknown): Obj | typeof NO {
  if (!isObj(m)) return NO;
  const role = m.role;
  switch (role) {
    case 'system':
    case 'developer': {
      const c = textContent(m.content);
      return c === NO ? NO : { role, content: c };
    }
    case 'user': {
      const c = m.content;
      if (typeof c === 'string') return { role, content: c };
      const parts = textParts(c, true, false, 1);
      return parts === NO ? NO : { role, content: parts };
    }
    case 'tool': {
      const c = textContent(m.content);
      if (c === NO || !isStr(m.tool_call_id, 1, 200)) return NO;
      return { role, content: c, tool_call_id: m.tool_call_id };
    }
    case 'assistant': {
      const out: Obj = { role };
      if (has(m, 'content')) {
        const c = m.content;
        if (typeof c === 'string' || c === null) out.content = c;
        else {
          const parts = textParts(c, false, true, 0);
          if (parts === NO) return NO;
          out.content = parts;
        }
      }
      if (has(m, 'refusal')) {
        if (m.refusal !== null && !isStr(m.refusal)) return NO;
        out.refusal = m.refusal;
      }
      if (has(m, 'tool_calls')) {
        const tc = toolCalls(m.tool_calls);
        if (tc === NO) return NO;
        out.tool_calls = tc;
      }
      return out;
    }
    default:
      return NO;
  }
}

/** Optional, nullable scalar: absent → skip, null → null, else checked. */
function opt(doc: Obj, out: Obj, k: string, ok: (v: unknown) => boolean): boolean {
  if (!has(doc, k)) return true;
  const v = doc[k];
  if (v !== null && !ok(v)) return false;
  out[k] = v;
  return true;
}

const between = (min: number, max: number) => (v: unknown) => isNum(v, min, max);
const isBool = (v: unknown) => typeof v === 'boolean';
const positiveInt = (v: unknown) => isInt(v) && v > 0;
const stop = (v: unknown) => typeof v === 'string' || (Array.isArray(v) && v.length <= 4 && v.every((s) => typeof s === 'string'));
const EFFORTS = new Set(['minimal', 'low', 'medium', 'high']);

/** Same result as `chatRequestSchema.parse(doc)` for the shapes it handles; undefined otherwise (use zod). */
export function fastParseChatRequest(doc: unknown): ChatRequest | undefined {
  if (!isObj(doc)) return undefined;
  if (has(doc, 'logit_bias') || has(doc, 'response_format') || has(doc, 'tools') || has(doc, 'tool_choice')) return undefined;
  const out: Obj = {};
  if (!isStr(doc.model, 1, 200)) return undefined;
  out.model = doc.model;
  const ms = doc.messages;
  if (!Array.isArray(ms) || ms.length < 1 || ms.length > 2048) return undefined;
  const messages = new Array<unknown>(ms.length);
  for (let i = 0; i < ms.length; i++) {
    const m = message(ms[i]);
    if (m === NO) return undefined;
    messages[i] = m;
  }
  out.messages = messages;
  // Shape order of chatRequestSchema (zod builds its output in that order).
  if (!opt(doc, out, 'temperature', between(0, 2))) return undefined;
  if (!opt(doc, out, 'top_p', between(0, 1))) return undefined;
  if (!opt(doc, out, 'max_tokens', positiveInt)) return undefined;
  if (!opt(doc, out, 'max_completion_tokens', positiveInt)) return undefined;
  if (has(doc, 'stop')) {
    const s = doc.stop;
    if (s !== null && !stop(s)) return undefined;
    out.stop = Array.isArray(s) ? [...(s as string[])] : s;
  }
  if (!opt(doc, out, 'stream', isBool)) return undefined;
  if (has(doc, 'stream_options')) {
    const so = doc.stream_options;
    if (so === null) out.stream_options = null;
    else {
      if (!isObj(so)) return undefined;
      const o: Obj = {};
      if (has(so, 'include_usage')) {
        if (!isBool(so.include_usage)) return undefined;
        o.include_usage = so.include_usage;
      }
      out.stream_options = o;
    }
  }
  if (!opt(doc, out, 'presence_penalty', between(-2, 2))) return undefined;
  if (!opt(doc, out, 'frequency_penalty', between(-2, 2))) return undefined;
  if (!opt(doc, out, 'logprobs', isBool)) return undefined;
  if (!opt(doc, out, 'top_logprobs', (v) => isInt(v) && v >= 0 && v <= 20)) return undefined;
  if (!opt(doc, out, 'seed', isInt)) return undefined;
  if (!opt(doc, out, 'n', (v) => v === 1)) return undefined;
  if (has(doc, 'parallel_tool_calls')) {
    if (!isBool(doc.parallel_tool_calls)) return undefined;
    out.parallel_tool_calls = doc.parallel_tool_calls;
  }
  if (!opt(doc, out, 'reasoning_effort', (v) => typeof v === 'string' && EFFORTS.has(v))) return undefined;
  return out as ChatRequest;
}

/**
 * The edge of the redemption path: parse and validate a chat-completions body,
 * and keep only an allowlist of fields. Unknown fields (`user`, `metadata`,
 * `store`, `safety_identifier`, a message's `name`, …) are dropped by zod's
 * default strip mode, at every level — nothing identifying reaches upstream.
 */
import { z } from 'zod';
import { fastParseChatRequest } from './chatRequestFast.js';
import { RedemptionError } from './errors.js';

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const imagePart = z.object({
  type: z.literal('image_url'),
  image_url: z.object({ url: z.string().min(1), detail: z.enum(['auto', 'low', 'high']).optional() }),
});
const refusalPart = z.object({ type: z.literal('refusal'), refusal: z.string() });

const textContent = z.union([z.string(), z.array(textPart).min(1)]);
const toolCall = z.object({
  id: z.string().min(1).max(200),
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1).max(200), arguments: z.string() }),
});

const message = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: textContent }),
  z.object({ role: z.literal('developer'), content: textContent }),
  z.object({ role: z.literal('user'), content: z.union([z.string(), z.array(z.discriminatedUnion('type', [textPart, imagePart])).min(1)]) }),
  z.object({
    role: z.literal('assistant'),
    content: z.union([z.string(), z.array(z.discriminatedUnion('type', [textPart, refusalPart])), z.null()]).optional(),
    refusal: z.string().nullable().optional(),
    tool_calls: z.array(toolCall).max(128).optional(),
  }),
  z.object({ role: z.literal('tool'), content: textContent, tool_call_id: z.string().min(1).max(200) }),
]);

const jsonObject = z.record(z.unknown());

export const chatRequestSchema = z.object({
  model: z.string().min(1).max(200),
  messages: z.array(message).min(1).max(2048),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  max_tokens: z.number().int().positive().nullable().optional(),
  max_completion_tokens: z.number().int().positive().nullable().optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  // Keys are token ids: free text there would be forwarded without moderation.
  logit_bias: z.record(z.string().regex(/^\d{1,10}$/, 'keys must be token ids'), z.number().min(-100).max(100)).nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  // More than one choice multiplies upstream cost at a fixed price: only 1.
  n: z.literal(1).nullable().optional(),
  response_format: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('text') }),
      z.object({ type: z.literal('json_object') }),
      z.object({
        type: z.literal('json_schema'),
        json_schema: z.object({ name: z.string().min(1).max(64), description: z.string().optional(), schema: jsonObject.optional(), strict: z.boolean().nullable().optional() }),
      }),
    ])
    .optional(),
  tools: z
    .array(
      z.object({
        type: z.literal('function'),
        function: z.object({ name: z.string().min(1).max(64), description: z.string().optional(), parameters: jsonObject.optional(), strict: z.boolean().nullable().optional() }),
      }),
    )
    .max(128)
    .optional(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string().min(1).max(64) }) })])
    .optional(),
  parallel_tool_calls: z.boolean().optional(),
  reasoning_effort: z.enum(['minimal', 'low', 'medium', 'high']).nullable().optional(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** Deepest JSON nesting accepted (stringify and friends recurse; a 4 MB "[[[[…" must be a 400, not a stack overflow). */
const MAX_DEPTH = 64;

function checkDepth(v: unknown, depth: number): void {
  if (depth > MAX_DEPTH) throw new RedemptionError('invalid_request', `request JSON is nested deeper than ${MAX_DEPTH} levels`);
  if (v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) checkDepth(v[i], depth + 1);
  } else {
    for (const k in v) checkDepth((v as Record<string, unknown>)[k], depth + 1);
  }
}

/** Parses the raw body. Errors never quote the input (V8's JSON errors do, so they are replaced). */
export function parseChatRequest(raw: Buffer): ChatRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new RedemptionError('invalid_json', 'request body is not valid JSON');
  }
  checkDepth(doc, 0);
  // The common shapes without zod (same output, property-tested); anything else, and every error, through zod.
  const fast = fastParseChatRequest(doc);
  if (fast) return fast;
  const r = chatRequestSchema.safeParse(doc);
  if (!r.success) {
    // Paths and zod's messages name fields and expectations, never values.
    const first = r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
    throw new RedemptionError('invalid_request', `request body does not match the chat-completions schema: ${first.join('; ')}`);
  }
  return r.data;
}

/** Text and image parts, for moderation. */
export interface ModerationInput {
  texts: string[];
  imageUrls: string[];
}

/** Every key and string value of a JSON document (a tool's parameters, a response schema): all of it reaches the model. */
function jsonTexts(v: unknown, out: string[]): void {
  if (typeof v === 'string') {
    if (v) out.push(v);
  } else if (Array.isArray(v)) {
    for (const x of v) jsonTexts(x, out);
  } else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push(k);
      jsonTexts(x, out);
    }
  }
}

/**
 * Every free text the upstream receives (the allowlist of chatRequestSchema), so that no
 * field carries what moderation would refuse in a message: contents, refusals, tool calls
 * (names, ids, arguments), tool definitions (names, descriptions, parameter schemas), the
 * forced tool, the response schema (name, description, schema) and stop sequences. The
 * other forwarded fields are numbers, booleans, enums or token ids.
 */
export function moderationInput(req: ChatRequest): ModerationInput {
  const texts: string[] = [];
  const imageUrls: string[] = [];
  const push = (t: string | null | undefined): void => {
    if (t) texts.push(t);
  };
  for (const m of req.messages) {
    const c = m.content;
    if (typeof c === 'string') {
      if (c) texts.push(c);
    } else if (Array.isArray(c)) {
      for (const p of c) {
        if (p.type === 'text') texts.push(p.text);
        else if (p.type === 'refusal') texts.push(p.refusal);
        else imageUrls.push(p.image_url.url);
      }
    }
    if (m.role === 'assistant') {
      push(m.refusal);
      if (m.tool_calls) {
        for (const t of m.tool_calls) {
          push(t.id);
          push(t.function.name);
          push(t.function.arguments);
        }
      }
    }
    if (m.role === 'tool') push(m.tool_call_id);
  }
  for (const t of req.tools ?? []) {
    push(t.function.name);
    push(t.function.description);
    jsonTexts(t.function.parameters, texts);
  }
  if (typeof req.tool_choice === 'object') push(req.tool_choice.function.name);
  if (req.response_format?.type === 'json_schema') {
    const js = req.response_format.json_schema;
    push(js.name);
    push(js.description);
    jsonTexts(js.schema, texts);
  }
  if (typeof req.stop === 'string') push(req.stop);
  else if (req.stop) for (const s of req.stop) push(s);
  return { texts, imageUrls };
}

/** Deterministic JSON (sorted keys): the request binding must not depend on key order. */
export function canonicalJson(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) {
    let s = '[';
    for (let i = 0; i < v.length; i++) s += (i === 0 ? '' : ',') + canonicalJson(v[i]);
    return s + ']';
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  let s = '{';
  let first = true;
  for (const k of keys) {
    const x = o[k];
    if (x === undefined) continue;
    s += (first ? '' : ',') + JSON.stringify(k) + ':' + canonicalJson(x);
    first = false;
  }
  return s + '}';
}

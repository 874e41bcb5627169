/**
 * The hand-written fast path of the chat-request validator must be
 * indistinguishable from the zod schema: whenever it answers, zod accepts the
 * same document and returns the same value (same keys, same order); when zod
 * rejects, it declines. Likewise the string-building canonicalJson must equal
 * the original map/join implementation (the request binding stored in Redis).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalJson, chatRequestSchema, parseChatRequest } from '../../src/redemption/chatRequest.js';
import { fastParseChatRequest } from '../../src/redemption/chatRequestFast.js';

/** The original canonicalJson (before the string-building rewrite): the reference. */
function canonicalJsonReference(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJsonReference).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJsonReference(o[k])}`).join(',')}}`;
}

const anyJson = fc.jsonValue({ maxDepth: 2 });
/** Mostly valid values, sometimes anything: exercises both sides of every check. */
const mostly = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 30, arbitrary: valid }, { weight: 1, arbitrary: anyJson as fc.Arbitrary<unknown> });
const str = (min: number, max: number) => fc.string({ minLength: min, maxLength: max });
const edgeLen = fc.oneof({ weight: 10, arbitrary: str(1, 12) }, { weight: 1, arbitrary: str(195, 205) }, { weight: 1, arbitrary: fc.constantFrom('', 'x', 'a'.repeat(200), 'a'.repeat(201), 'a'.repeat(64), 'a'.repeat(65)) });
const num = (min: number, max: number) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.oneof(fc.double({ min, max, noNaN: true }), fc.integer({ min: Math.ceil(min), max: Math.floor(max) })) },
    { weight: 1, arbitrary: fc.oneof(fc.double({ min: min - 1, max: max + 1, noNaN: true }), fc.constantFrom(min, max, min - 0.5, max + 0.5, 0, 1, -1, 0.5, 1e308, -1e308), fc.integer({ min: -5, max: 30 })) },
  );

const textPart = fc.record({ type: mostly(fc.constantFrom('text', 'text', 'text', 'image_url', 'refusal', 'TEXT')), text: mostly(fc.string()), extra: anyJson }, { requiredKeys: ['type'] });
const imagePart = fc.record(
  { type: mostly(fc.constant('image_url')), image_url: mostly(fc.record({ url: mostly(str(0, 20)), detail: mostly(fc.constantFrom('auto', 'low', 'high', 'max')), x: anyJson }, { requiredKeys: [] })) },
  { requiredKeys: ['type'] },
);
const refusalPart = fc.record({ type: mostly(fc.constant('refusal')), refusal: mostly(fc.string()) }, { requiredKeys: ['type'] });
const parts = fc.array(fc.oneof(textPart, imagePart, refusalPart), { maxLength: 3 });
const toolCall = fc.record(
  { id: mostly(edgeLen), type: mostly(fc.constantFrom('function', 'other')), function: mostly(fc.record({ name: mostly(edgeLen), arguments: mostly(fc.string()) }, { requiredKeys: [] })) },
  { requiredKeys: [] },
);
const message = fc.record(
  {
    role: mostly(fc.constantFrom('system', 'developer', 'user', 'user', 'assistant', 'tool', 'function')),
    content: fc.oneof({ weight: 12, arbitrary: fc.string() }, { weight: 6, arbitrary: parts }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: anyJson }),
    refusal: mostly(fc.option(fc.string())),
    tool_calls: mostly(fc.array(toolCall, { maxLength: 2 })),
    tool_call_id: mostly(edgeLen),
    name: fc.string(),
  },
  { requiredKeys: ['role'] },
);
const nullable = <T>(a: fc.Arbitrary<T>) => fc.oneof({ weight: 8, arbitrary: a as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.constant(null) });
/** Present now and then: a key whose presence sends the document to zod. */
const rare = <T>(a: fc.Arbitrary<T>) => fc.option(a as fc.Arbitrary<unknown>, { freq: 8, nil: undefined });
const request = fc.record(
  {
    model: mostly(edgeLen),
    messages: mostly(fc.array(message, { minLength: 0, maxLength: 3 })),
    // (an empty list is invalid: covered, since minLength is 0)
    temperature: nullable(mostly(num(0, 2))),
    top_p: nullable(mostly(num(0, 1))),
    max_tokens: nullable(mostly(num(0, 10))),
    max_completion_tokens: nullable(mostly(num(0, 10))),
    stop: nullable(mostly(fc.oneof(fc.string(), fc.array(mostly(fc.string()), { maxLength: 6 })))),
    stream: nullable(mostly(fc.boolean())),
    stream_options: nullable(mostly(fc.record({ include_usage: mostly(fc.boolean()), other: anyJson }, { requiredKeys: [] }))),
    presence_penalty: nullable(mostly(num(-2, 2))),
    frequency_penalty: nullable(mostly(num(-2, 2))),
    logit_bias: rare(nullable(mostly(fc.dictionary(fc.string({ maxLength: 3 }), num(-100, 100), { maxKeys: 2 })))),
    logprobs: nullable(mostly(fc.boolean())),
    top_logprobs: nullable(mostly(num(0, 20))),
    seed: nullable(mostly(num(-10, 10))),
    n: nullable(mostly(fc.constantFrom(1, 1, 1, 1, 2, 0, 1.5))),
    response_format: rare(mostly(fc.record({ type: fc.constantFrom('text', 'json_object') }))),
    tools: rare(mostly(fc.constant([]))),
    tool_choice: rare(mostly(fc.constantFrom('none', 'auto', 'required'))),
    parallel_tool_calls: nullable(mostly(fc.boolean())),
    reasoning_effort: nullable(mostly(fc.constantFrom('minimal', 'low', 'medium', 'high', 'max'))),
    user: fc.string(),
    metadata: anyJson,
    store: fc.boolean(),
  },
  { requiredKeys: ['model', 'messages'] },
);
/** Documents a real client sends (valid, or invalid only near the edges of the ranges). */
const okText = fc.record({ type: fc.constant('text'), text: fc.string() });
const okImage = fc.record({ type: fc.constant('image_url'), image_url: fc.record({ url: str(1, 10), detail: fc.constantFrom('auto', 'low', 'high') }, { requiredKeys: ['url'] }) });
const okCall = fc.record({ id: str(1, 8), type: fc.constant('function'), function: fc.record({ name: str(1, 8), arguments: fc.string() }) });
const okMessage = fc.oneof(
  fc.record({ role: fc.constantFrom('system', 'developer'), content: fc.oneof(fc.string(), fc.array(okText, { minLength: 1, maxLength: 2 })), name: fc.string() }, { requiredKeys: ['role', 'content'] }),
  fc.record({ role: fc.constant('user'), content: fc.oneof(fc.string(), fc.array(fc.oneof(okText, okImage), { minLength: 1, maxLength: 3 })) }),
  fc.record(
    { role: fc.constant('assistant'), content: fc.oneof(fc.string(), fc.constant(null), fc.array(fc.oneof(okText, fc.record({ type: fc.constant('refusal'), refusal: fc.string() })), { maxLength: 2 })), refusal: fc.option(fc.string()), tool_calls: fc.array(okCall, { maxLength: 2 }) },
    { requiredKeys: ['role'] },
  ),
  fc.record({ role: fc.constant('tool'), content: fc.oneof(fc.string(), fc.array(okText, { minLength: 1, maxLength: 2 })), tool_call_id: str(1, 8) }),
);
const plausible = fc.record(
  {
    model: edgeLen,
    messages: fc.array(okMessage, { minLength: 1, maxLength: 4 }),
    temperature: nullable(num(0, 2)),
    top_p: nullable(num(0, 1)),
    max_tokens: nullable(fc.integer({ min: 0, max: 4096 })),
    max_completion_tokens: nullable(fc.integer({ min: 1, max: 4096 })),
    stop: nullable(fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 5 }))),
    stream: nullable(fc.boolean()),
    stream_options: nullable(fc.record({ include_usage: fc.boolean() }, { requiredKeys: [] })),
    presence_penalty: nullable(num(-2, 2)),
    frequency_penalty: nullable(num(-2, 2)),
    logprobs: nullable(fc.boolean()),
    top_logprobs: nullable(fc.integer({ min: 0, max: 21 })),
    seed: nullable(fc.oneof(fc.integer(), fc.double({ noNaN: true }))),
    n: nullable(fc.constantFrom(1, 1, 1, 2)),
    parallel_tool_calls: fc.boolean(),
    reasoning_effort: nullable(fc.constantFrom('minimal', 'low', 'medium', 'high', 'max')),
    user: fc.string(),
  },
  { requiredKeys: ['model', 'messages'] },
);
/** What the server actually validates: a value that went through JSON (no undefined, no -0, no NaN). */
const asJson = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;

describe('chat request fast path (equivalence with the zod schema)', () => {
  it('never disagrees with zod, on valid and invalid documents alike', function () {
    // 20 000 documents take ~5 s on a quiet core; a loaded CI machine must not turn that into a failure.
    this.timeout(120_000);
    let fastHits = 0;
    let zodOk = 0;
    fc.assert(
      fc.property(fc.oneof(plausible, request), fc.boolean(), (doc0, shuffle) => {
        let doc = asJson(doc0) as Record<string, unknown>;
        // Key order must not matter either.
        if (shuffle) doc = Object.fromEntries(Object.entries(doc).reverse());
        const z = chatRequestSchema.safeParse(doc);
        const f = fastParseChatRequest(doc);
        if (z.success) zodOk++;
        if (f === undefined) return;
        fastHits++;
        assert.ok(z.success, `fast path accepted what zod rejects: ${JSON.stringify(doc)}`);
        assert.deepStrictEqual(f, z.data);
        assert.equal(JSON.stringify(f), JSON.stringify(z.data), 'same key order as zod');
      }),
      { numRuns: 20_000 },
    );
    // The generator must reach both sides, or the property proves nothing.
    console.log(`      (${zodOk} of 20000 documents valid, ${fastHits} through the fast path)`);
    assert.ok(zodOk > 2500, `only ${zodOk} valid documents generated`);
    assert.ok(fastHits > 2000, `only ${fastHits} documents took the fast path`);
  });

  it('takes the fast path for the common shapes', () => {
    const docs = [
      { model: 'm', messages: [{ role: 'user', content: 'hi' }] },
      { model: 'm', stream: true, stream_options: { include_usage: true }, temperature: 0.2, max_tokens: 100, user: 'dropped', messages: [{ role: 'system', content: 'be terse' }, { role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: 'data:x', detail: 'low' } }], name: 'dropped' }] },
      { model: 'm', messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', content: 'r', tool_call_id: 'c1' }] },
    ];
    for (const d of docs) {
      const f = fastParseChatRequest(d);
      assert.ok(f, JSON.stringify(d));
      assert.deepStrictEqual(f, chatRequestSchema.parse(d));
      assert.deepStrictEqual(parseChatRequest(Buffer.from(JSON.stringify(d))), f);
    }
    assert.equal(fastParseChatRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }], tools: [] }), undefined, 'tools are left to zod');
  });

  it('canonicalJson equals the reference implementation', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => {
        assert.equal(canonicalJson(v), canonicalJsonReference(v));
      }),
      { numRuns: 5_000 },
    );
    fc.assert(
      fc.property(request, (doc) => {
        const z = chatRequestSchema.safeParse(asJson(doc));
        if (z.success) assert.equal(canonicalJson(z.data), canonicalJsonReference(z.data));
      }),
      { numRuns: 3_000 },
    );
    // Objects with undefined members (the allowlisted request can have them) and nested arrays.
    const o = { b: undefined, a: [1, undefined, { z: undefined, y: 'é\u2028"' }], c: null };
    assert.equal(canonicalJson(o), canonicalJsonReference(o));
  });
});

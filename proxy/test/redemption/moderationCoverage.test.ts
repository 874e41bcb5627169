/// <reference types="mocha" />
/**
 * D2 of issue 13: every free-text field that is forwarded upstream is moderated (or not
 * forwarded). One request per field, each carrying the blocked marker of the default local
 * rules only in that field: each must be refused before anything reaches the upstream.
 */
import assert from 'node:assert/strict';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp, type TestApp } from './support/testApp.js';

const MARK = 'LLMTOR-MODERATION-TEST-BLOCK';
const user = { role: 'user', content: 'hello' };
const tool = (fn: Record<string, unknown>) => ({ type: 'function', function: { name: 'get_weather', ...fn } });
const schemaFormat = (js: Record<string, unknown>) => ({ type: 'json_schema', json_schema: { name: 'answer', ...js } });

/** Field → a request with the marker in that field only. */
const CASES: [string, Record<string, unknown>][] = [
  ['messages[].refusal (assistant)', { messages: [user, { role: 'assistant', content: 'ok', refusal: `I refuse ${MARK}` }, user] }],
  ['messages[].content[] refusal part (assistant)', { messages: [user, { role: 'assistant', content: [{ type: 'refusal', refusal: MARK }] }, user] }],
  [
    'messages[].tool_calls[].function.name',
    { messages: [user, { role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: `x_${MARK}`, arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c1', content: 'r' }] },
  ],
  [
    'messages[].tool_calls[].id and tool_call_id',
    { messages: [user, { role: 'assistant', tool_calls: [{ id: MARK, type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: MARK, content: 'r' }] },
  ],
  ['tools[].function.description', { messages: [user], tools: [tool({ description: `Say ${MARK}` })] }],
  ['tools[].function.name', { messages: [user], tools: [tool({ name: `say_${MARK}` })] }],
  ['tools[].function.parameters (a description inside)', { messages: [user], tools: [tool({ parameters: { type: 'object', properties: { city: { type: 'string', description: MARK } } } })] }],
  ['tools[].function.parameters (a property name)', { messages: [user], tools: [tool({ parameters: { type: 'object', properties: { [MARK]: { type: 'string' } } } })] }],
  ['tools[].function.parameters (an enum value)', { messages: [user], tools: [tool({ parameters: { type: 'object', properties: { c: { type: 'string', enum: ['a', MARK] } } } })] }],
  ['tool_choice.function.name', { messages: [user], tools: [tool({ name: `f_${MARK}` })], tool_choice: { type: 'function', function: { name: `f_${MARK}` } } }],
  ['response_format.json_schema.description', { messages: [user], response_format: schemaFormat({ description: MARK }) }],
  ['response_format.json_schema.schema', { messages: [user], response_format: schemaFormat({ schema: { type: 'object', properties: { a: { type: 'string', description: MARK } } } }) }],
  ['response_format.json_schema.name', { messages: [user], response_format: schemaFormat({ name: `n_${MARK.replace(/-/g, '_')}`.slice(0, 64) }) }],
  ['stop (string)', { messages: [user], stop: MARK }],
  ['stop (array)', { messages: [user], stop: ['x', MARK] }],
];

describe('redemption: moderation covers every forwarded text field (local rules)', function () {
  this.timeout(60_000);
  let mint: Mint;
  let up: LocalStandInUpstream;
  let app: TestApp;
  let abuse: string;

  before(async () => {
    mint = await Mint.create();
    abuse = await mint.abuseHeader();
    up = new LocalStandInUpstream();
    await up.listen();
    app = await startTestApp({
      mint,
      config: {
        models: [{ id: 'm', provider: 'p' }],
        providers: { p: { baseUrl: up.baseUrl } },
        rateLimit: { requests: 1_000, windowSeconds: 60 },
        // The test marker, also in its underscore form (a schema name allows no '-').
        moderation: { provider: 'local', rules: [{ id: 'marker', category: 'test', pattern: 'LLMTOR[-_]MODERATION[-_]TEST[-_]BLOCK' }] },
      },
    });
  });
  after(async () => {
    await app?.close();
    await up?.close();
  });

  for (const [field, extra] of CASES) {
    it(`blocks the marker in ${field}`, async () => {
      const before = up.requests;
      const [t] = mint.bulkTokens('credit', 1);
      const r = await chat(app.url, { model: 'm', ...extra }, { authorization: authorization([t!]), 'llmtor-abuse': abuse });
      assert.equal(r.status, 400, r.text);
      assert.equal((r.json() as { error: { code: string } }).error.code, 'content_blocked', r.text);
      assert.equal(up.requests, before, 'nothing reached the upstream');
    });
  }

  it('the same requests without the marker are forwarded (the cases are valid requests)', async () => {
    for (const [field, extra] of CASES) {
      const clean = JSON.parse(JSON.stringify(extra).replaceAll(MARK, 'harmless').replaceAll(MARK.replace(/-/g, '_'), 'harmless')) as Record<string, unknown>;
      const [t] = mint.bulkTokens('credit', 1);
      const r = await chat(app.url, { model: 'm', ...clean }, { authorization: authorization([t!]), 'llmtor-abuse': abuse });
      assert.equal(r.status, 200, `${field}: ${r.text}`);
    }
  });

  it('logit_bias keys must be token ids (free text there would go upstream unmoderated)', async () => {
    const [t] = mint.bulkTokens('credit', 1);
    const r = await chat(app.url, { model: 'm', messages: [user], logit_bias: { [MARK]: 1 } }, { authorization: authorization([t!]), 'llmtor-abuse': abuse });
    assert.equal(r.status, 400, r.text);
    assert.equal((r.json() as { error: { code: string } }).error.code, 'invalid_request');
    const [t2] = mint.bulkTokens('credit', 1);
    assert.equal((await chat(app.url, { model: 'm', messages: [user], logit_bias: { '50256': -100 } }, { authorization: authorization([t2!]), 'llmtor-abuse': abuse })).status, 200);
  });
});

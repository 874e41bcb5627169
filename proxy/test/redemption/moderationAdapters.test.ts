import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AzureContentSafetyModerator, chunkText, LocalRuleModerator, ModerationUnavailable, OpenAIModerator } from '../../src/moderation/index.js';
import { DEFAULT_LOCAL_RULES } from '../../src/redemption/config.js';
import { LocalStandInUpstream } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp } from './support/testApp.js';

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** A local HTTP stand-in: records requests and answers with `answer(url, body)` → [status, json]. */
async function standIn(answer: (url: string, body: Record<string, unknown>, headers: IncomingHttpHeaders) => [number, unknown]): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      seen.push({ url: req.url ?? '', headers: req.headers, body });
      const [status, json] = answer(req.url ?? '', body, req.headers);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

const signal = new AbortController().signal;

/** OpenAI's published shape: { id, model, results: [{ flagged, categories, category_scores, category_applied_input_types }] }. */
function openaiAnswer(_url: string, body: Record<string, unknown>, headers: IncomingHttpHeaders): [number, unknown] {
  if (headers.authorization !== 'Bearer sk-mod') return [401, { error: { message: 'bad key' } }];
  const input = body.input as ({ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } })[];
  const text = input.map((p) => (p.type === 'text' ? p.text : '')).join(' ');
  const badImage = input.some((p) => p.type === 'image_url' && p.image_url.url.includes('bad'));
  const violence = /\bATTACK\b/.test(text) ? 0.93 : 0.01;
  const hate = /\bHATE\b/.test(text) ? 0.6 : 0.001;
  const flagged = violence > 0.5 || hate > 0.5 || badImage;
  return [
    200,
    {
      id: 'modr-1',
      model: body.model,
      results: [
        {
          flagged,
          categories: { violence: violence > 0.5, hate: hate > 0.5, 'sexual/minors': false, sexual: badImage },
          category_scores: { violence, hate, 'sexual/minors': 0.0001, sexual: badImage ? 0.9 : 0.001 },
          category_applied_input_types: { violence: ['text'], hate: ['text'], sexual: ['text', 'image'] },
        },
      ],
    },
  ];
}

/** Azure's published shape: { blocklistsMatch: [], categoriesAnalysis: [{ category, severity }] }; 10 000 characters at most. */
function azureAnswer(url: string, body: Record<string, unknown>, headers: IncomingHttpHeaders): [number, unknown] {
  if (headers['ocp-apim-subscription-key'] !== 'az-key') return [401, { error: { code: 'PermissionDenied', message: 'bad key' } }];
  if (!url.endsWith('?api-version=2024-09-01')) return [404, { error: { code: 'NotFound' } }];
  const severity = (s: string) => {
    const cats: Record<string, number> = { Hate: 0, SelfHarm: 0, Sexual: 0, Violence: 0 };
    if (s.includes('VIOLENT')) cats.Violence = 4;
    if (s.includes('HATEFUL')) cats.Hate = 6;
    return Object.entries(cats).map(([category, sev]) => ({ category, severity: sev }));
  };
  if (url.startsWith('/contentsafety/text:analyze')) {
    const text = body.text as string;
    if (typeof text !== 'string' || text.length > 10_000) return [400, { error: { code: 'InvalidRequestBody', message: 'text exceeds 10000 characters' } }];
    return [200, { blocklistsMatch: [], categoriesAnalysis: severity(text) }];
  }
  if (url.startsWith('/contentsafety/image:analyze')) {
    const img = body.image as { content?: string };
    if (typeof img?.content !== 'string') return [400, { error: { code: 'InvalidRequestBody' } }];
    return [200, { categoriesAnalysis: severity(Buffer.from(img.content, 'base64').toString('latin1')) }];
  }
  return [404, { error: { code: 'NotFound' } }];
}

describe('moderation providers', function () {
  this.timeout(20_000);

  describe('local rule list (default, no account)', () => {
    it('flags matching text case-insensitively and passes the rest', async () => {
      const m = new LocalRuleModerator(DEFAULT_LOCAL_RULES);
      assert.deepEqual(await m.moderate({ texts: ['hello', 'please llmtor-moderation-test-block'], imageUrls: [] }), { flagged: true, categories: ['test'] });
      assert.deepEqual(await m.moderate({ texts: ['the children went to school'], imageUrls: [] }), { flagged: false, categories: [] });
    });
    it('refuses an invalid rule at start', () => {
      assert.throws(() => new LocalRuleModerator([{ id: 'x', category: 'c', pattern: '(' }]), /not a valid regular expression/);
    });
  });

  describe('OpenAI moderation API adapter', () => {
    it('sends text and image parts in the published shape and reads the verdict', async () => {
      const s = await standIn(openaiAnswer);
      try {
        const m = new OpenAIModerator({ baseUrl: `${s.url}/v1`, apiKey: 'sk-mod', model: 'omni-moderation-latest', scoreThresholds: {}, timeoutMs: 2000 });
        assert.deepEqual(await m.moderate({ texts: ['a calm question'], imageUrls: [] }, signal), { flagged: false, categories: [] });
        const v = await m.moderate({ texts: ['plan an ATTACK'], imageUrls: ['https://img.example/ok.png', 'data:image/png;base64,bad'] }, signal);
        assert.equal(v.flagged, true);
        assert.deepEqual(v.categories.sort(), ['sexual', 'violence']);
        const last = s.seen.slice(-2);
        assert.equal(s.seen[0]!.url, '/v1/moderations');
        assert.deepEqual(last[0]!.body, { model: 'omni-moderation-latest', input: [{ type: 'text', text: 'plan an ATTACK' }, { type: 'image_url', image_url: { url: 'https://img.example/ok.png' } }] });
        assert.deepEqual(last[1]!.body.input, [{ type: 'image_url', image_url: { url: 'data:image/png;base64,bad' } }]);
      } finally {
        s.server.close();
      }
    });
    it('applies per-category score thresholds when configured', async () => {
      const s = await standIn(openaiAnswer);
      try {
        const strict = new OpenAIModerator({ baseUrl: s.url, apiKey: 'sk-mod', model: 'omni-moderation-latest', scoreThresholds: { hate: 0.3 }, timeoutMs: 2000 });
        assert.deepEqual(await strict.moderate({ texts: ['HATE'], imageUrls: [] }, signal), { flagged: true, categories: ['hate'] });
        const lax = new OpenAIModerator({ baseUrl: s.url, apiKey: 'sk-mod', model: 'omni-moderation-latest', scoreThresholds: { hate: 0.9 }, timeoutMs: 2000 });
        assert.equal((await lax.moderate({ texts: ['HATE'], imageUrls: [] }, signal)).flagged, false);
      } finally {
        s.server.close();
      }
    });
    it('reports the provider unavailable on an error answer', async () => {
      const s = await standIn(() => [500, { error: { message: 'boom' } }]);
      try {
        const m = new OpenAIModerator({ baseUrl: s.url, apiKey: 'sk-mod', model: 'omni-moderation-latest', scoreThresholds: {}, timeoutMs: 2000 });
        await assert.rejects(m.moderate({ texts: ['x'], imageUrls: [] }, signal), ModerationUnavailable);
      } finally {
        s.server.close();
      }
    });
  });

  describe('Azure AI Content Safety adapter', () => {
    const opts = (endpoint: string) => ({ endpoint, apiKey: 'az-key', apiVersion: '2024-09-01', severityThresholds: { Hate: 4, Violence: 4, Sexual: 4, SelfHarm: 4 }, remoteImages: 'block' as const, timeoutMs: 2000 });

    it('chunks long text at the 10 000-character limit and blocks on any chunk over a category threshold', async () => {
      const s = await standIn(azureAnswer);
      try {
        const m = new AzureContentSafetyModerator(opts(s.url));
        const long = `${'lorem ipsum '.repeat(2100)} VIOLENT ending`;
        const v = await m.moderate({ texts: [long], imageUrls: [] }, signal);
        assert.deepEqual(v, { flagged: true, categories: ['Violence'] });
        const texts = s.seen.map((x) => x.body.text as string);
        assert.equal(texts.length, 3);
        assert.ok(texts.every((t) => t.length <= 10_000));
        assert.equal(texts.join(''), long);
        assert.deepEqual(s.seen[0]!.body.categories, ['Hate', 'SelfHarm', 'Sexual', 'Violence']);
        assert.equal(s.seen[0]!.body.outputType, 'FourSeverityLevels');
        assert.equal(s.seen[0]!.url, '/contentsafety/text:analyze?api-version=2024-09-01');
      } finally {
        s.server.close();
      }
    });
    it('respects the severity threshold per category', async () => {
      const s = await standIn(azureAnswer);
      try {
        const m = new AzureContentSafetyModerator({ ...opts(s.url), severityThresholds: { Violence: 6, Hate: 2 } });
        assert.equal((await m.moderate({ texts: ['VIOLENT'], imageUrls: [] }, signal)).flagged, false);
        assert.deepEqual(await m.moderate({ texts: ['HATEFUL'], imageUrls: [] }, signal), { flagged: true, categories: ['Hate'] });
      } finally {
        s.server.close();
      }
    });
    it('analyses inline images with image:analyze and refuses image URLs it cannot see', async () => {
      const s = await standIn(azureAnswer);
      try {
        const m = new AzureContentSafetyModerator(opts(s.url));
        const img = `data:image/png;base64,${Buffer.from('PNG VIOLENT pixels').toString('base64')}`;
        assert.deepEqual(await m.moderate({ texts: [], imageUrls: [img] }, signal), { flagged: true, categories: ['Violence'] });
        assert.equal(s.seen.at(-1)!.url, '/contentsafety/image:analyze?api-version=2024-09-01');
        assert.deepEqual(await m.moderate({ texts: ['fine'], imageUrls: ['https://example.org/cat.png'] }, signal), { flagged: true, categories: ['UnmoderatableImage'] });
      } finally {
        s.server.close();
      }
    });
    it('never splits a surrogate pair when chunking', () => {
      const text = 'a'.repeat(9_999) + '😀' + 'b'.repeat(50);
      const parts = chunkText(text);
      assert.equal(parts.join(''), text);
      for (const p of parts) assert.ok(!/[\ud800-\udbff]$/.test(p));
    });
  });

  describe('through the redemption path', () => {
    it('a remote provider blocks with a structured refusal; when it is down the request fails closed and the token stays retryable', async () => {
      let down = false;
      const s = await standIn((url, body, headers) => (down ? [503, { error: { message: 'down' } }] : openaiAnswer(url, body, headers)));
      const mint = await Mint.create();
      const up = new LocalStandInUpstream();
      await up.listen();
      const app = await startTestApp({
        mint,
        config: { models: [{ id: 'm', provider: 'p' }], providers: { p: { baseUrl: up.baseUrl } }, moderation: { provider: 'openai', baseUrl: s.url, apiKey: 'sk-mod' } },
      });
      try {
        const abuse = await mint.abuseHeader();
        const blocked = await chat(app.url, { model: 'm', messages: [{ role: 'user', content: 'plan an ATTACK' }] }, { authorization: authorization(await mint.tokens('credit', 1)), 'llmtor-abuse': abuse });
        assert.equal(blocked.status, 400);
        assert.deepEqual((blocked.json() as { error: { categories: string[]; moderation_provider: string } }).error.categories, ['violence']);
        down = true;
        const t = await mint.tokens('credit', 1);
        const body = { model: 'm', messages: [{ role: 'user', content: 'hello' }] };
        const r = await chat(app.url, body, { authorization: authorization(t), 'llmtor-abuse': abuse });
        assert.equal(r.status, 503);
        assert.equal((r.json() as { error: { code: string } }).error.code, 'moderation_unavailable');
        assert.equal(up.requests, 0);
        down = false;
        assert.equal((await chat(app.url, body, { authorization: authorization(t), 'llmtor-abuse': abuse })).status, 200);
        // Moderation saw only content: no client header, no token.
        for (const x of s.seen) assert.deepEqual(Object.keys(x.headers).filter((h) => !['host', 'connection', 'content-length', 'content-type', 'accept', 'authorization', 'accept-encoding', 'accept-language', 'sec-fetch-mode', 'user-agent'].includes(h)), []);
      } finally {
        await app.close();
        await up.close();
        s.server.close();
      }
    });
  });
});

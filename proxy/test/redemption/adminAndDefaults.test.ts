import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { fromBase64Url } from '@llmtor/protocol';
import { STAND_IN_TEXT } from '../support/upstreamStandIn.js';
import { authorization, Mint } from './support/tokens.js';
import { chat, startTestApp } from './support/testApp.js';

describe('embedded defaults and pseudonym administration', function () {
  this.timeout(20_000);

  it('with no configuration at all (embedded store, local stand-in upstream, local rules) a streamed redemption, its replay and a rejected reuse work', async () => {
    const mint = await Mint.create();
    const app = await startTestApp({ mint });
    try {
      const models = (await (await fetch(`${app.url}/v1/models`)).json()) as { data: { id: string; llmtor: { price_credits: number } }[] };
      assert.equal(models.data[0]!.id, 'llmtor-stand-in');
      const t = await mint.tokens('credit', 1);
      const h = { authorization: authorization(t), 'llmtor-abuse': await mint.abuseHeader() };
      const body = { model: 'llmtor-stand-in', stream: true, messages: [{ role: 'user', content: 'hello' }] };
      const a = await chat(app.url, body, h);
      assert.equal(a.status, 200);
      const text = a.text
        .split('\n\n')
        .filter((l) => l.startsWith('data: {'))
        .map((l) => (JSON.parse(l.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]!.delta.content ?? '')
        .join('');
      assert.equal(text, STAND_IN_TEXT);
      assert.equal((await chat(app.url, { ...body, messages: [{ role: 'user', content: 'reuse' }] }, h)).status, 409);
      const again = await chat(app.url, body, h);
      assert.equal(again.headers.get('llmtor-replay'), 'true');
      assert.equal(again.text, a.text);
      assert.ok(app.logs.join('').includes('LOCAL STAND-IN'));
    } finally {
      await app.close();
    }
  });

  it('an operator blacklists a pseudonym by its hash, lists it and lifts it; the admin API needs the admin token', async () => {
    const mint = await Mint.create();
    const app = await startTestApp({ mint, config: { adminToken: 'admin-secret-token-123' } });
    const admin = { authorization: 'Bearer admin-secret-token-123' };
    try {
      const abuse = await mint.abuseHeader();
      const permanent = fromBase64Url(abuse.split(', ')[0]!.split('=')[1]!);
      const pseudonym = createHash('sha256').update('llmtor-pseudonym-v1:permanent:').update(permanent).digest('hex');
      assert.equal((await fetch(`${app.url}/admin/pseudonyms/blacklist`)).status, 401);
      assert.equal((await fetch(`${app.url}/admin/pseudonyms/blacklist`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
      const put = await fetch(`${app.url}/admin/pseudonyms/blacklist/permanent/${pseudonym}`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: '{"ttlSeconds":3600}' });
      assert.equal(put.status, 200);
      const list = (await (await fetch(`${app.url}/admin/pseudonyms/blacklist`, { headers: admin })).json()) as { data: { kind: string; pseudonym: string }[] };
      assert.deepEqual(list.data.map((e) => [e.kind, e.pseudonym]), [['permanent', pseudonym]]);
      const t = await mint.tokens('credit', 1);
      const body = { model: 'llmtor-stand-in', messages: [{ role: 'user', content: 'hi' }] };
      assert.equal((await chat(app.url, body, { authorization: authorization(t), 'llmtor-abuse': abuse })).status, 403);
      assert.equal((await fetch(`${app.url}/admin/pseudonyms/blacklist/permanent/${pseudonym}`, { method: 'DELETE', headers: admin })).status, 204);
      assert.equal((await chat(app.url, body, { authorization: authorization(t), 'llmtor-abuse': abuse })).status, 200);
      assert.equal((await fetch(`${app.url}/admin/pseudonyms/blacklist/permanent/nothex`, { method: 'PUT', headers: admin })).status, 400);
    } finally {
      await app.close();
    }
  });

  it('counts moderation flags per pseudonym for the operator', async () => {
    const mint = await Mint.create();
    const app = await startTestApp({ mint, config: { adminToken: 'admin-secret-token-123' } });
    try {
      const abuse = await mint.abuseHeader();
      for (let i = 0; i < 2; i++) {
        const r = await chat(app.url, { model: 'llmtor-stand-in', messages: [{ role: 'user', content: `LLMTOR-MODERATION-TEST-BLOCK ${i}` }] }, { authorization: authorization(await mint.tokens('credit', 1)), 'llmtor-abuse': abuse });
        assert.equal(r.status, 400);
      }
      const f = (await (await fetch(`${app.url}/admin/pseudonyms/flagged`, { headers: { authorization: 'Bearer admin-secret-token-123' } })).json()) as { data: { flags: number }[] };
      assert.deepEqual(f.data.map((x) => x.flags), [2]);
    } finally {
      await app.close();
    }
  });
});

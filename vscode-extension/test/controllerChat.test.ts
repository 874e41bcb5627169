/**
 * The real Controller's chat flow (vscode stubbed, the client's network calls replaced): a
 * prompt that got no answer is kept on screen but never sent again with the next one, and
 * failures read as plain words with a next step.
 */
import assert from 'node:assert/strict';
import type * as ControllerModule from '../src/vscode/controller.js';
import { ServerError } from '../src/core/apiErrors.js';
import { friendlyError } from '../src/core/friendlyErrors.js';
import { TorTransportError } from '../src/core/torTransport.js';
import { MemorySecretStore } from '../src/core/wallet.js';
import { installVscodeStub } from './helpers/vscodeStub.js';

type Sent = { role: string; content: string }[];

type Opts = { onRetry?: (e: unknown, attempt: number, of: number) => void };

async function controller(reply: (messages: Sent, opts: Opts) => Promise<string>) {
  installVscodeStub({});
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Controller } = require('../src/vscode/controller.js') as typeof ControllerModule;
  const secrets = new MemorySecretStore();
  await secrets.store('llmtor.accountKey', '1234 5678');
  const none = () => ({ dispose() {} });
  const tor = { status: { kind: 'ready' }, onDidChange: none, ensureStarted: async () => ({ host: '127.0.0.1', port: 9 }), socks: () => ({ host: '127.0.0.1', port: 9 }), restart: async () => undefined, dispose() {} };
  const store = new Map<string, unknown>();
  const ctx = { secrets, globalState: { get: (k: string) => store.get(k), update: async (k: string, v: unknown) => void store.set(k, v) }, subscriptions: [] };
  const c = new Controller(ctx as never, tor as never);
  const sent: Sent[] = [];
  const model = { id: 'm', priceCredits: 1, bytesPerCredit: 30_000 };
  Object.assign(c.client, {
    models: async () => [model],
    send: async (_m: string, messages: Sent, opts: Opts) => {
      sent.push(messages.map((x) => ({ role: x.role, content: x.content })));
      const content = await reply(messages, opts);
      return { content, credits: 1 };
    },
  });
  await c.start();
  return { c, sent };
}

describe('controller: chat flow', () => {
  it('does not resend a prompt that got no answer with the next one', async () => {
    let fail = true;
    const { c, sent } = await controller(async () => {
      if (fail) throw new ServerError(502, 'upstream_failed', 'chat: the upstream provider failed');
      return 'ok';
    });
    await c.chat.send('first, fails');
    const after = c.state().messages;
    assert.equal(after[0]?.role, 'user');
    assert.match(after[0]?.error ?? '', /not added to your next message/);
    assert.match(after[1]?.error ?? '', /model provider failed/);
    fail = false;
    await c.chat.send('second');
    assert.deepEqual(sent.at(-1), [{ role: 'user', content: 'second' }]);
    // Editing the failed prompt sends it again (alone: what followed it is dropped).
    await c.chat.edit(after[0]!.id, 'first, again');
    assert.deepEqual(sent.at(-1), [{ role: 'user', content: 'first, again' }]);
    assert.equal(c.state().messages[0]?.error, undefined);
    c.dispose();
  });

  it('says at once that the upstream failed and the request is being retried', async () => {
    let release!: () => void;
    const { c } = await controller(async (_m, opts) => {
      opts.onRetry?.(new ServerError(502, 'upstream_failed', 'chat: the upstream provider failed'), 1, 2);
      await new Promise<void>((r) => (release = r));
      return 'late answer';
    });
    const sending = c.chat.send('hello');
    for (let i = 0; i < 50 && !c.state().busy; i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(c.state().busy ?? '', /model provider failed.*retrying \(1 of 2\)/);
    release();
    await sending;
    assert.equal(c.state().busy, undefined);
    c.dispose();
  });

  it('keeps the model choice out of the settings (no reload prompt) and previews nothing identifying', async () => {
    const { c } = await controller(async () => 'ok');
    c.chat.selectModel('m');
    assert.equal(c.state().model, 'm');
    assert.deepEqual(c.state().models, [{ id: 'm', priceCredits: 1, bytesPerCredit: 30_000 }]);
    c.dispose();
  });
});

describe('errors a person can act on', () => {
  it('maps Tor, SOCKS, network and HTTP failures to plain words with a next step', () => {
    const cases: [unknown, RegExp, string | undefined][] = [
      [new TorTransportError('tor_unreachable', 'no Tor SOCKS port answers at 127.0.0.1:9050'), /Tor is not running.*nothing was sent/, 'llmtor.restartTor'],
      [new Error('Socks5 proxy rejected connection - HostUnreachable'), /Tor could not reach the LLM-Tor server.*Nothing was charged/, 'llmtor.restartTor'],
      [new Error('Socks5 proxy rejected connection - GeneralFailure'), /could not build a path/, 'llmtor.restartTor'],
      [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8080'), { code: 'ECONNREFUSED' }), /not reachable.*llmtor.issuerUrl/, 'llmtor.openSettings'],
      [new ServerError(402, 'insufficient_credits', 'issuance: not enough credit'), /no credit left/, 'llmtor.buyCredits'],
      [new ServerError(401, 'unknown_account', 'account: unknown account'), /does not know this account key/, 'llmtor.signIn'],
      [new ServerError(503, 'upstream_busy', 'chat: upstream busy'), /model provider failed to answer \(upstream busy\)/, undefined],
      [new ServerError(429, 'rate_limited', 'chat: too many requests'), /slow down/, undefined],
      [new ServerError(502, 'stream_cut', 'chat: cut'), /Regenerate/, undefined],
    ];
    for (const [e, text, command] of cases) {
      const f = friendlyError(e);
      assert.match(f.text, text, String(e));
      assert.equal(f.action?.command, command, String(e));
    }
  });
});

describe('controller: #file context', () => {
  it('sends attached files in a delimited block with that message only, and keeps them in the history', async () => {
    const { c, sent } = await controller(async () => 'ok');
    c.files.pending = [{ path: 'src/a.ts', text: 'export const a = 1;\n' }];
    assert.equal(c.state().attachments.length, 1);
    await c.chat.send('explain a');
    assert.equal(c.state().attachments.length, 0, 'attachments go with the message they were attached to');
    assert.equal(sent.at(-1)?.[0]?.content, '<attached-files count="1">\nFile: src/a.ts\n```ts\nexport const a = 1;\n```\n</attached-files>\n\nexplain a');
    const shown = c.state().messages[0]!;
    assert.equal(shown.content, 'explain a', 'the chat shows the words, the files as chips');
    assert.deepEqual(shown.files?.map((f) => f.path), ['src/a.ts']);
    // A later message resends the conversation as it was sent (the file is part of it), attaching nothing new.
    await c.chat.send('and now?');
    assert.match(sent.at(-1)?.[0]?.content ?? '', /^<attached-files count="1">/);
    assert.equal(sent.at(-1)?.[2]?.content, 'and now?');
    c.dispose();
  });
});

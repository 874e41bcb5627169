import assert from 'node:assert/strict';
import { ChatHistory, MemoryKeyValueStore } from '../src/core/history.js';

describe('chat history (local only)', () => {
  it('keeps conversations in the local store and restores them', async () => {
    const store = new MemoryKeyValueStore();
    const h = new ChatHistory(store, true);
    h.add({ role: 'user', content: 'first question' });
    h.add({ role: 'assistant', content: 'an answer' });
    await new Promise((r) => setImmediate(r));
    const again = new ChatHistory(store, true);
    assert.equal(again.current().title, 'first question');
    assert.deepEqual(again.current().messages.map((m) => m.role), ['user', 'assistant']);
  });

  it('stores nothing when history is off, and turning it off deletes what was stored', async () => {
    const store = new MemoryKeyValueStore();
    const off = new ChatHistory(store, false);
    off.add({ role: 'user', content: 'secret' });
    await new Promise((r) => setImmediate(r));
    assert.equal(store.get('llmtor.history.v1'), undefined);
    const on = new ChatHistory(store, true);
    on.add({ role: 'user', content: 'kept' });
    await new Promise((r) => setImmediate(r));
    assert.ok(store.get('llmtor.history.v1'));
    await on.setPersist(false);
    assert.equal(store.get('llmtor.history.v1'), undefined);
  });

  it('edits a question (dropping what followed), deletes messages and regenerates the last answer', () => {
    const h = new ChatHistory(new MemoryKeyValueStore(), false);
    const q1 = h.add({ role: 'user', content: 'q1' });
    h.add({ role: 'assistant', content: 'a1' });
    h.add({ role: 'user', content: 'q2' });
    const a2 = h.add({ role: 'assistant', content: 'a2' });
    assert.deepEqual(h.truncateForRegenerate()?.map((m) => m.content), ['q1', 'a1', 'q2']);
    h.add({ role: 'assistant', content: 'a2 again' });
    h.delete(a2.id);
    assert.equal(h.edit(q1.id, 'q1 edited')?.content, 'q1 edited');
    assert.deepEqual(h.current().messages.map((m) => m.content), ['q1 edited']);
    h.newConversation();
    assert.equal(h.current().messages.length, 0);
    assert.equal(h.list().length, 2);
  });
});

describe('chat history encrypted at rest', () => {
  it('stores AES-256-GCM ciphertext under a key in the secret store; without the key nothing is readable', async () => {
    const { HistoryCipher, HISTORY_KEY_SECRET } = await import('../src/core/historyCipher.js');
    const { MemorySecretStore } = await import('../src/core/wallet.js');
    const secrets = new MemorySecretStore();
    const store = new MemoryKeyValueStore();
    const h = new ChatHistory(store, true, Date.now, await HistoryCipher.fromSecrets(secrets));
    h.add({ role: 'user', content: 'a private question' });
    await new Promise((r) => setImmediate(r));
    const raw = store.get<unknown>('llmtor.history.v1');
    assert.equal(typeof raw, 'string');
    assert.ok(!String(raw).includes('private'), 'no plain text at rest');
    const again = new ChatHistory(store, true, Date.now, await HistoryCipher.fromSecrets(secrets));
    assert.equal(again.current().messages[0]?.content, 'a private question');
    // Sign-out with "delete history" deletes the key: a copy of the stored value is useless.
    await secrets.delete(HISTORY_KEY_SECRET);
    const after = new ChatHistory(store, true, Date.now, await HistoryCipher.fromSecrets(secrets));
    assert.equal(after.list().filter((c) => c.messages.length > 0).length, 0);
  });

  it('encrypts a history an older version stored in plain text', async () => {
    const { HistoryCipher } = await import('../src/core/historyCipher.js');
    const { MemorySecretStore } = await import('../src/core/wallet.js');
    const store = new MemoryKeyValueStore();
    const plain = new ChatHistory(store, true);
    plain.add({ role: 'user', content: 'old plain text' });
    await new Promise((r) => setImmediate(r));
    const h = new ChatHistory(store, true, Date.now, await HistoryCipher.fromSecrets(new MemorySecretStore()));
    await new Promise((r) => setImmediate(r));
    assert.equal(h.current().messages[0]?.content, 'old plain text');
    assert.ok(!String(store.get<unknown>('llmtor.history.v1')).includes('old plain'));
  });
});

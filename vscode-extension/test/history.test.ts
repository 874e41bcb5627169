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

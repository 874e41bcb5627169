/** Search in the local chat history (core/historySearch.ts), over a real ChatHistory. */
import assert from 'node:assert/strict';
import { ChatHistory, MemoryKeyValueStore } from '../src/core/history.js';
import { searchHistory } from '../src/core/historySearch.js';

function history(): ChatHistory {
  let t = 1_000;
  const h = new ChatHistory(new MemoryKeyValueStore(), false, () => (t += 1000));
  h.add({ role: 'user', content: 'How do I parse JSON in Rust?' });
  h.add({ role: 'assistant', content: 'Use serde_json: `serde_json::from_str(&text)`. Serde derives the types.' });
  h.newConversation();
  h.add({ role: 'user', content: 'Explain Tor circuits', files: [{ path: 'docs/privacy.md', text: 'not searched' }] });
  h.add({ role: 'assistant', content: 'A circuit has three hops; serde is unrelated.' });
  h.newConversation();
  h.add({ role: 'user', content: 'serde or miniserde for a small CLI? serde serde' });
  h.newConversation(); // empty: never listed
  return h;
}

describe('chat history search (local)', () => {
  it('finds conversations by words in any message, case-insensitively, with a snippet around the match', () => {
    const hits = searchHistory(history().list(), 'SERDE_json');
    assert.deepEqual(hits.map((h) => h.title), ['How do I parse JSON in Rust?']);
    assert.match(hits[0]!.snippet, /^Use serde_json/);
    assert.equal(hits[0]!.matches, 2);
  });

  it('needs every term; ranks a title match first, then more matches, then the newest', () => {
    const h = history();
    assert.deepEqual(searchHistory(h.list(), 'serde').map((x) => x.title), ['serde or miniserde for a small CLI? serde serde', 'How do I parse JSON in Rust?', 'Explain Tor circuits']);
    assert.deepEqual(searchHistory(h.list(), 'serde hops').map((x) => x.title), ['Explain Tor circuits']);
    assert.deepEqual(searchHistory(h.list(), 'serde nowhere'), []);
    // An attached file's path is searchable (its text is not: it is context, not the chat).
    assert.deepEqual(searchHistory(h.list(), 'privacy.md').map((x) => x.title), ['Explain Tor circuits']);
    assert.deepEqual(searchHistory(h.list(), 'not searched'), []);
  });

  it('lists every non-empty conversation, newest first, for an empty query; long text is cut around the match', () => {
    const h = history();
    assert.deepEqual(searchHistory(h.list(), '  ').map((x) => x.title), ['serde or miniserde for a small CLI? serde serde', 'Explain Tor circuits', 'How do I parse JSON in Rust?']);
    h.add({ role: 'user', content: `${'lorem '.repeat(50)}needle ${'ipsum '.repeat(50)}` });
    const [hit] = searchHistory(h.list(), 'needle');
    assert.match(hit!.snippet, /^….{20,40}needle.*…$/);
    assert.ok(hit!.snippet.length < 160);
  });
});

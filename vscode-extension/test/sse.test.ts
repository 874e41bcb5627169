import assert from 'node:assert/strict';
import { SseParser } from '../src/core/sse.js';

describe('SSE parser', () => {
  it('parses OpenAI-style chunks split anywhere, including inside a UTF-8 character', () => {
    const text = 'data: {"a":"ü"}\n\n: comment\ndata: line1\ndata: line2\r\n\r\nevent: x\ndata: [DONE]\n\n';
    const bytes = Buffer.from(text, 'utf8');
    for (let split = 1; split < bytes.length; split++) {
      const p = new SseParser();
      const evs = [...p.push(bytes.subarray(0, split)), ...p.push(bytes.subarray(split))];
      assert.deepEqual(
        evs.map((e) => [e.event, e.data]),
        [
          ['message', '{"a":"ü"}'],
          ['message', 'line1\nline2'],
          ['x', '[DONE]'],
        ],
        `split at ${split}`,
      );
    }
  });

  it('drops an event that is not terminated by a blank line', () => {
    const p = new SseParser();
    assert.deepEqual(p.push('data: partial'), []);
    assert.deepEqual(p.end(), []);
  });
});

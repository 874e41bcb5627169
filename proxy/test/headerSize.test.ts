import assert from 'node:assert/strict';
import { request } from 'node:http';
import { formatAuthorization } from '@llmtor/protocol';
import { startLocalStack, type LocalStack } from '../src/localStack.js';

function post(url: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('HTTP server limits', () => {
  let stack: LocalStack;
  before(async () => {
    stack = await startLocalStack();
  });
  after(() => stack.stop());

  it('accepts an Authorization header with 64 PrivateToken credentials (more than Node’s default 16 KiB of headers)', async () => {
    const tokens = Array.from({ length: 64 }, (_, i) => {
      const t = new Uint8Array(354).fill(i);
      t[1] = 2;
      return t;
    });
    const auth = formatAuthorization(tokens);
    assert.ok(auth.length > 16 * 1024);
    const status = await post(`${stack.url}/v1/chat/completions`, { authorization: auth }, JSON.stringify({ model: 'llmtor-stand-in', messages: [{ role: 'user', content: 'hi' }] }));
    // The request reaches the redemption code (which refuses these forged tokens) instead of Node's 431.
    assert.notEqual(status, 431);
    assert.ok(status === 400 || status === 401, `status ${status}`);
  });
});

/// <reference types="mocha" />
/**
 * D7 of issue 13: a method a route does not have gets `405` with `Allow`, a method the server
 * does not implement at all gets `501`, both in the JSON error shape every other error uses
 * (they came as plain text).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startLocalStack, type LocalStack } from '../src/localStack.js';

function send(url: string, method: string): Promise<{ status: number; type: string; allow: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), allow: res.headers.allow, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP methods: 405 and 501 in the JSON error shape', () => {
  let stack: LocalStack;
  before(async () => {
    stack = await startLocalStack();
  });
  after(() => stack.stop());

  for (const [method, path, status, code] of [
    ['DELETE', '/v1/account', 405, 'method_not_allowed'],
    ['GET', '/token-request', 405, 'method_not_allowed'],
    ['PUT', '/v1/chat/completions', 405, 'method_not_allowed'],
    ['TRACE', '/v1/account', 501, 'not_implemented'],
    ['PROPFIND', '/token-request', 501, 'not_implemented'],
  ] as const) {
    it(`${method} ${path} → ${status} ${code}`, async () => {
      const r = await send(`${stack.url}${path}`, method);
      assert.equal(r.status, status, r.body);
      assert.match(r.type, /^application\/json/);
      const e = (JSON.parse(r.body) as { error: { code: string; message: string } }).error;
      assert.equal(e.code, code);
      assert.match(e.message, new RegExp(method));
      if (status === 405) {
        assert.ok(r.allow, 'Allow header');
        assert.ok(e.message.includes(r.allow!.split(',')[0]!.trim()), e.message);
      }
    });
  }
});

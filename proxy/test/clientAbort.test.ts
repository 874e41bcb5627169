/// <reference types="mocha" />
/**
 * D9 of issue 13: a client that closes the connection in the middle of its request body is
 * not a server error: no error-level "unexpected error" log line, no `status="500"` in the
 * HTTP metrics, outcome `client_gone` on the redemption side. Both roles, one process.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { startLocalStack, type LocalStack } from '../src/localStack.js';

/** Headers announcing `declared` bytes, then `sent` bytes of body, then the socket is destroyed. */
function abortMidBody(url: string, path: string, headers: Record<string, string>, declared: number, sent: number): Promise<void> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const sock = connect(Number(port), '127.0.0.1', () => {
      sock.write([`POST ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, `Content-Length: ${declared}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n'));
      sock.write(Buffer.alloc(sent, 0x20), () => setTimeout(() => (sock.destroy(), resolve()), 100));
    });
    sock.on('error', () => resolve());
  });
}

describe('a client aborting mid-body is not a server error', function () {
  this.timeout(30_000);
  let stack: LocalStack;
  const lines: { level: number; msg: string }[] = [];
  before(async () => {
    const dest = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
        cb();
      },
    });
    stack = await startLocalStack({ overrides: { logger: pino({ level: 'debug' }, dest) } });
  });
  after(() => stack.stop());

  it('on /v1/chat/completions, /token-request and /v1/purchases', async () => {
    const account = (await (await fetch(`${stack.url}/v1/accounts`, { method: 'POST' })).json()) as { account_key: string };
    await abortMidBody(stack.url, '/v1/chat/completions', { 'content-type': 'application/json' }, 5_000, 100);
    await abortMidBody(stack.url, '/token-request', { authorization: `Bearer ${account.account_key}`, 'content-type': 'application/private-token-request' }, 259, 10);
    await abortMidBody(stack.url, '/v1/purchases', { authorization: `Bearer ${account.account_key}`, 'content-type': 'application/json' }, 500, 10);
    await new Promise((r) => setTimeout(r, 500));
    const errors = lines.filter((l) => l.level >= 50);
    assert.deepEqual(errors.map((l) => l.msg), []);
    const metrics = await (await fetch(`${stack.url}/metrics`)).text();
    assert.doesNotMatch(metrics, /llmtor_http_requests_total\{[^}]*status="500"/);
    assert.match(metrics, /llmtor_redemption_requests_total\{outcome="internal_error"\} 0\n/);
    assert.match(metrics, /llmtor_redemption_requests_total\{outcome="client_gone"\} 1/);
  });
});

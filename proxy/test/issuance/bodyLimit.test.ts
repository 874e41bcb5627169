/// <reference types="mocha" />
/**
 * D8 of issue 13: a chunked body (no Content-Length) that grows past the limit of
 * /token-request or /v1/purchases must get `413 body_too_large` in the JSON error shape,
 * not a reset connection. Raw sockets on loopback: the client keeps the body open (as a
 * streaming client would) and reads what the server answers.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { createAccount } from '../../src/dev/issuanceClient.js';
import { startIssuanceProxy, type TestProxy } from '../support/issuanceHarness.js';

/** Sends headers and `chunks` × `chunkBytes` of chunked body without the final chunk; resolves with everything the server sent before closing (or after 10 s). */
function chunkedPost(url: string, path: string, headers: Record<string, string>, chunkBytes: number, chunks: number): Promise<{ text: string; error?: string }> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const sock = connect(Number(port), '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish('timeout'), 10_000);
    sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
    sock.on('end', () => finish());
    sock.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    sock.on('connect', () => {
      const head = [`POST ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Transfer-Encoding: chunked', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
      sock.write(head);
      const chunk = Buffer.concat([Buffer.from(`${chunkBytes.toString(16)}\r\n`), Buffer.alloc(chunkBytes, 0x41), Buffer.from('\r\n')]);
      let i = 0;
      const more = () => {
        while (i < chunks && !done) {
          i++;
          if (!sock.write(chunk)) return void sock.once('drain', more);
        }
      };
      more();
    });
  });
}

describe('issuance: a chunked body over the limit gets 413, not a reset', function () {
  this.timeout(60_000);
  let proxy: TestProxy;
  let key: string;
  before(async () => {
    proxy = await startIssuanceProxy({ config: { issuance: { maxBatchSize: 10 } } });
    key = await createAccount(proxy.url);
  });
  after(() => proxy?.stop());

  for (const [path, type, chunks] of [
    ['/token-request', 'application/private-token-generic-batch-request', 40],
    ['/v1/purchases', 'application/json', 4],
  ] as const) {
    it(`${path}`, async () => {
      const r = await chunkedPost(proxy.url, path, { authorization: `Bearer ${key}`, 'content-type': type }, 16_384, chunks);
      assert.match(r.text, /^HTTP\/1\.1 413 /, `got ${JSON.stringify(r.text.slice(0, 80))} ${r.error ?? ''}`);
      const body = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
      assert.match(body, /"code":"body_too_large"/);
    });
  }
});

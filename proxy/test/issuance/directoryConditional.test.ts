/** The issuer directory answers If-None-Match with 304 even when the request also says Cache-Control: no-cache, as fetch() does. */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { ISSUER_DIRECTORY_PATH } from '@llmtor/protocol';
import { notModified } from '../../src/http/conditional.js';
import { startIssuanceProxy } from '../support/issuanceHarness.js';

function get(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = request(url, { headers }, (x) => (x.resume(), resolve(x.statusCode ?? 0)));
    r.on('error', reject);
    r.end();
  });
}

describe('issuer directory: If-None-Match (RFC 9110 §13.1.2)', function () {
  this.timeout(30_000);

  it('304 for a matching ETag with Cache-Control: no-cache, from fetch() and from a bare request', async () => {
    const proxy = await startIssuanceProxy({ config: { publicBaseUrl: 'https://issuer.example' } });
    try {
      const url = `${proxy.url}${ISSUER_DIRECTORY_PATH}`;
      const etag = (await fetch(url)).headers.get('etag')!;
      assert.equal((await fetch(url, { headers: { 'if-none-match': etag } })).status, 304);
      assert.equal(await get(url, { 'if-none-match': etag, 'cache-control': 'no-cache', pragma: 'no-cache' }), 304);
      assert.equal(await get(url, { 'if-none-match': `"other", W/${etag}` }), 304);
      assert.equal(await get(url, { 'if-none-match': '"other"', 'cache-control': 'no-cache' }), 200);
      assert.equal(await get(url, { 'cache-control': 'no-cache' }), 200);
    } finally {
      await proxy.stop();
    }
  });

  it('compares entity tags weakly and honours *', () => {
    assert.equal(notModified('"a"', '"a"'), true);
    assert.equal(notModified('W/"a"', '"a"'), true);
    assert.equal(notModified('"b", "a"', '"a"'), true);
    assert.equal(notModified('*', '"a"'), true);
    assert.equal(notModified('"b"', '"a"'), false);
    assert.equal(notModified('a', '"a"'), false);
    assert.equal(notModified(undefined, '"a"'), false);
  });
});

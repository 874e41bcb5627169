/**
 * The bundled extension (out/extension.js, built by `npm run build` before the tests) must not
 * contain the `debug` package: with DEBUG set it would print SOCKS targets (.onion hosts) to
 * stderr and VS Code's logs. esbuild aliases it to src/vscode/noDebug.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

describe('bundle', () => {
  it('has no `debug` module that could print onion hosts', () => {
    const bundle = readFileSync(path.join(__dirname, '../../out/extension.js'), 'utf8');
    assert.match(bundle, /socks-proxy-agent/, 'this is the bundle with the SOCKS agent');
    for (const marker of ['DEBUG_COLORS', 'process.env.DEBUG', 'inspectOpts']) assert.ok(!bundle.includes(marker), `the bundle contains ${marker} (the debug package)`);
  });

  it('the stand-in never prints, whatever DEBUG says', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const createDebug = require('../src/vscode/noDebug.js') as (ns: string) => ((...a: unknown[]) => void) & { enabled: boolean };
    const writes: unknown[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: unknown) => (writes.push(c), true)) as typeof process.stderr.write;
    try {
      const d = createDebug('socks-proxy-agent');
      d('connecting to %s', 'abcdefghijklmnop.onion');
      assert.equal(d.enabled, false);
    } finally {
      process.stderr.write = orig;
    }
    assert.deepEqual(writes, []);
  });
});

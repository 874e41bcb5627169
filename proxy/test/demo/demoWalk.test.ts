/**
 * `make demo` (proxy/dist/src/demo.js) as a person runs it: the terminal walk
 * reads as prose (no JSON log records mixed in), then the page is served until
 * Ctrl-C; `--no-serve` stops after the walk.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DEMO = fileURLToPath(new URL('../../src/demo.js', import.meta.url));

function run(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [DEMO, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('make demo: the terminal walk', function () {
  this.timeout(120_000);

  it('reads as prose and stops after the walk with --no-serve', async () => {
    const r = run(['--no-serve']);
    const timer = setTimeout(() => r.child.kill('SIGKILL'), 100_000);
    const code = await r.exited;
    clearTimeout(timer);
    const out = r.output();
    assert.equal(code, 0, out);
    for (const step of ['1. Open an account', '2. Buy credits', '3. Get tokens', '4. All ', '5. Redeem, anonymously', '6. Replay', '7. Retry']) assert.ok(out.includes(step), `${step} in:\n${out}`);
    assert.match(out, /gets the same answer back from the cache/);
    // The embedded defaults are announced as lines for a person, not as log records.
    assert.match(out, /^ {3}note: NO KEY DIRECTORY/m);
    assert.equal(out.split('\n').filter((l) => l.trimStart().startsWith('{')).length, 0, `no JSON records in:\n${out}`);
    assert.match(out, /--no-serve: stopping here; without it the interactive page would be served at http:\/\/127\.0\.0\.1:\d+\/demo/);
  });

  it('then serves the page until Ctrl-C (LLMTOR_DEMO_EXIT unset)', async () => {
    const r = run([], { LLMTOR_DEMO_EXIT: '' });
    const timer = setTimeout(() => r.child.kill('SIGKILL'), 100_000);
    try {
      await waitFor(() => /Ctrl-C to stop/.test(r.output()), 90_000, 'the page URL');
      const url = /^ {4}(http:\/\/127\.0\.0\.1:\d+\/demo)$/m.exec(r.output())?.[1];
      assert.ok(url, r.output());
      const page = await fetch(url);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /interactive protocol demo/);
      r.child.kill('SIGINT');
      assert.equal(await r.exited, 0);
    } finally {
      clearTimeout(timer);
      r.child.kill('SIGKILL');
    }
  });
});

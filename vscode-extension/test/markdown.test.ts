import assert from 'node:assert/strict';
import { renderMarkdown } from '../src/core/markdown.js';

const ALLOWED_TAGS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'blockquote', 'pre', 'code', 'strong', 'em', 'del', 'a', 'hr', 'br', 'div', 'button', 'span']);

function tags(html: string): string[] {
  return [...html.matchAll(/<\/?([a-zA-Z0-9]+)/g)].map((m) => m[1]!.toLowerCase());
}

describe('Markdown rendering (sanitized by construction)', () => {
  it('renders the usual answer markup', () => {
    const { html, codeBlocks } = renderMarkdown('# Title\n\nSome **bold**, *em* and `x < y`.\n\n- one\n- two\n\n```ts\nconst a = 1 < 2;\n```\n\n[docs](https://example.org/a?b=1&c=2)');
    assert.match(html, /<h1>Title<\/h1>/);
    assert.match(html, /<strong>bold<\/strong>/);
    assert.match(html, /<em>em<\/em>/);
    assert.match(html, /<code>x &lt; y<\/code>/);
    assert.match(html, /<ul><li>one<\/li><li>two<\/li><\/ul>/);
    assert.match(html, /<pre><code>const a = 1 &lt; 2;<\/code><\/pre>/);
    assert.match(html, /<a href="https:\/\/example.org\/a\?b=1&amp;c=2">docs<\/a>/);
    assert.deepEqual(codeBlocks, [{ lang: 'ts', code: 'const a = 1 < 2;' }]);
  });

  it('never lets HTML, script URLs or event handlers through', () => {
    const attacks = [
      '<script>alert(1)</script>',
      '<img src=x onerror=alert(1)>',
      '[click](javascript:alert(1))',
      '[x](data:text/html,<script>alert(1)</script>)',
      '**<iframe src="https://evil">**',
      '```\n</code></pre><script>alert(1)</script>\n```',
      '`<b onmouseover=alert(1)>`',
      '> <svg onload=alert(1)>',
      '[a](https://ok.org/"onmouseover="alert(1))',
    ];
    for (const a of attacks) {
      const { html } = renderMarkdown(a);
      for (const t of tags(html)) assert.ok(ALLOWED_TAGS.has(t), `tag <${t}> from ${JSON.stringify(a)}: ${html}`);
      assert.doesNotMatch(html, /<[^>]*\son\w+=/i, `event handler attribute from ${JSON.stringify(a)}: ${html}`);
      assert.doesNotMatch(html, /href="(?!https?:|mailto:)/i, `unsafe href from ${JSON.stringify(a)}: ${html}`);
    }
  });

  it('renders an unterminated code fence (an answer still streaming) as code', () => {
    const { html, codeBlocks } = renderMarkdown('Here:\n```py\nprint("hi")');
    assert.match(html, /<pre><code>print\(&quot;hi&quot;\)<\/code><\/pre>/);
    assert.equal(codeBlocks[0]?.lang, 'py');
  });
});

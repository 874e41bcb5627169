import assert from 'node:assert/strict';
import { renderMarkdown } from '../src/core/markdown.js';

const ALLOWED_TAGS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'blockquote', 'pre', 'code', 'strong', 'em', 'del', 'a', 'hr', 'br', 'div', 'button', 'span', 'table', 'thead', 'tbody', 'tr', 'th', 'td']);

const plain = (html: string) => html.replace(/<\/?span[^>]*>/g, '');

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
    assert.match(plain(html), /<pre><code>const a = 1 &lt; 2;<\/code><\/pre>/);
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
      '```html\n<img src=x onerror=alert(1)><script>alert(1)</script>\n```',
      '| <b onclick=x> | b |\n|:-:|--|\n| <script>x</script> | [y](javascript:1) |',
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
    assert.match(plain(html), /<pre><code>print\(&quot;hi&quot;\)<\/code><\/pre>/);
    assert.equal(codeBlocks[0]?.lang, 'py');
  });

  it('highlights known languages with token classes only, the text unchanged', () => {
    const { html } = renderMarkdown('```ts\nconst a: string = "x<y"; // note\n```');
    assert.match(html, /<span class="tok-keyword">const<\/span>/);
    assert.match(html, /<span class="tok-string">&quot;x&lt;y&quot;<\/span>/);
    assert.match(html, /<span class="tok-comment">\/\/ note<\/span>/);
    for (const cls of html.matchAll(/class="([^"]*)"/g)) assert.match(cls[1]!, /^(tok-[a-z-]+( tok-[a-z-]+)*|code-[a-z]+|copy-code|insert-code|apply-code)$/);
    // Unknown language: escaped plain text.
    assert.match(renderMarkdown('```nosuchlang\n<a>\n```').html, /<pre><code>&lt;a&gt;<\/code><\/pre>/);
  });

  it('renders tables with alignment, inline markup and ragged rows', () => {
    const { html } = renderMarkdown('Before\n\n| Name | Size |\n|:-----|-----:|\n| **a** | `1` |\n| b |\n\nAfter');
    assert.match(html, /<table><thead><tr><th style="text-align:left">Name<\/th><th style="text-align:right">Size<\/th><\/tr><\/thead>/);
    assert.match(html, /<tr><td style="text-align:left"><strong>a<\/strong><\/td><td style="text-align:right"><code>1<\/code><\/td><\/tr>/);
    assert.match(html, /<tr><td style="text-align:left">b<\/td><td style="text-align:right"><\/td><\/tr>/);
    assert.match(html, /<p>After<\/p>/);
  });
});

/**
 * Syntax highlighting for code blocks in answers, bundled (no network): Prism's tokenizer
 * only. Its tokens are turned into HTML here, escape-first like markdown.ts: the text of every
 * token is escaped and the only markup is `<span class="tok-…">` with a class made of
 * [a-z-] from Prism's token type. Colours come from VS Code theme variables (style.css).
 */
import Prism from 'prismjs';
import 'prismjs/components/prism-clike';
import 'prismjs/components/prism-javascript';
import 'prismjs/components/prism-typescript';
import 'prismjs/components/prism-jsx';
import 'prismjs/components/prism-tsx';
import 'prismjs/components/prism-json';
import 'prismjs/components/prism-python';
import 'prismjs/components/prism-bash';
import 'prismjs/components/prism-c';
import 'prismjs/components/prism-cpp';
import 'prismjs/components/prism-csharp';
import 'prismjs/components/prism-java';
import 'prismjs/components/prism-go';
import 'prismjs/components/prism-rust';
import 'prismjs/components/prism-yaml';
import 'prismjs/components/prism-sql';
import 'prismjs/components/prism-diff';
import 'prismjs/components/prism-css';
import 'prismjs/components/prism-markup';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const ALIASES: Record<string, string> = { js: 'javascript', mjs: 'javascript', cjs: 'javascript', ts: 'typescript', py: 'python', sh: 'bash', shell: 'bash', zsh: 'bash', console: 'bash', yml: 'yaml', 'c++': 'cpp', cs: 'csharp', golang: 'go', rs: 'rust', html: 'markup', xml: 'markup', svg: 'markup', patch: 'diff' };

export function languageOf(lang: string): string | undefined {
  const l = lang.toLowerCase();
  const name = ALIASES[l] ?? l;
  return Object.prototype.hasOwnProperty.call(Prism.languages, name) && typeof Prism.languages[name] === 'object' ? name : undefined;
}

/** Highlighted HTML for `code` (escaped plain text for an unknown language). */
export function highlight(code: string, lang: string): string {
  const name = languageOf(lang);
  if (!name) return escapeHtml(code);
  return render(Prism.tokenize(code, Prism.languages[name]!));
}

function render(stream: Prism.TokenStream): string {
  if (typeof stream === 'string') return escapeHtml(stream);
  if (Array.isArray(stream)) return stream.map(render).join('');
  const cls = [stream.type, ...(Array.isArray(stream.alias) ? stream.alias : stream.alias ? [stream.alias] : [])]
    .map((t) => t.toLowerCase().replace(/[^a-z-]/g, ''))
    .filter(Boolean)
    .map((t) => `tok-${t}`)
    .join(' ');
  return `<span class="${cls}">${render(stream.content)}</span>`;
}

/**
 * A small Markdown renderer for model answers, safe by construction: every piece of input
 * text is HTML-escaped before any markup is added, the only tags produced are a fixed
 * list (p, h1–h6, ul, ol, li, blockquote, pre, code, strong, em, del, a, hr, br, div,
 * button, span, table, thead, tbody, tr, th, td), attributes are fixed strings except `href`
 * (http, https and mailto only, escaped), `data-code-index`, `style="text-align:…"` from a
 * fixed set, and highlight.ts's `tok-[a-z-]` classes. No raw HTML from the input ever passes through, so no
 * sanitizer is needed; the webview's Content-Security-Policy is the second line of defence.
 *
 * Pure (no DOM): shared by the webview bundle and the unit tests.
 */

export interface RenderedMarkdown {
  html: string;
  /** The raw text of each fenced code block, by `data-code-index`. */
  codeBlocks: { lang: string; code: string }[];
}

import { escapeHtml, highlight } from './highlight.js';

export { escapeHtml };

const SAFE_URL = /^(https?:\/\/|mailto:)[^\s<>"'`]+$/i;

/** Inline markup on one already-split line of text (input is raw text, output is HTML). */
export function renderInline(text: string): string {
  // Code spans first: their content is literal. Split into code / non-code segments.
  const out: string[] = [];
  const re = /(`+)([\s\S]*?[^`])\1(?!`)/g;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    out.push(renderEmphasisAndLinks(text.slice(last, m.index)));
    out.push(`<code>${escapeHtml(m[2]!.replace(/^ (.*) $/, '$1'))}</code>`);
    last = m.index + m[0].length;
  }
  out.push(renderEmphasisAndLinks(text.slice(last)));
  return out.join('');
}

function renderEmphasisAndLinks(raw: string): string {
  // Links are found on the raw text (so the URL is checked before escaping), everything
  // else on escaped text.
  const parts: string[] = [];
  const linkRe = /\[([^\]\n]{1,500})\]\(([^()\s]{1,2000})\)/g;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = linkRe.exec(raw))) {
    parts.push(emphasis(escapeHtml(raw.slice(last, m.index))));
    const label = emphasis(escapeHtml(m[1]!));
    const url = m[2]!;
    parts.push(SAFE_URL.test(url) ? `<a href="${escapeHtml(url)}">${label}</a>` : label);
    last = m.index + m[0].length;
  }
  parts.push(emphasis(escapeHtml(raw.slice(last))));
  return parts.join('');
}

function emphasis(escaped: string): string {
  return escaped
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/__(?=\S)([\s\S]*?\S)__/g, '<strong>$1</strong>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>')
    .replace(/(^|[^*\w])\*(?=\S)([^*]*?\S)\*(?!\*)/g, '$1<em>$2</em>')
    .replace(/(^|[^_\w])_(?=\S)([^_]*?\S)_(?![_\w])/g, '$1<em>$2</em>');
}

type Block =
  | { kind: 'p'; lines: string[] }
  | { kind: 'h'; level: number; text: string }
  | { kind: 'code'; lang: string; lines: string[] }
  | { kind: 'list'; ordered: boolean; start: number; items: string[][] }
  | { kind: 'quote'; lines: string[] }
  | { kind: 'table'; align: ('left' | 'center' | 'right' | '')[]; head: string[]; rows: string[][] }
  | { kind: 'hr' };

function parseBlocks(text: string): Block[] {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let i = 0;
  const para = (): Extract<Block, { kind: 'p' }> => {
    const b = blocks.at(-1);
    if (b?.kind === 'p') return b;
    const nb: Extract<Block, { kind: 'p' }> = { kind: 'p', lines: [] };
    blocks.push(nb);
    return nb;
  };
  while (i < lines.length) {
    const line = lines[i]!;
    const fence = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/.exec(line);
    if (fence) {
      const marker = fence[1]!;
      const body: string[] = [];
      i++;
      // An unterminated fence (still streaming) runs to the end of the text.
      while (i < lines.length && !new RegExp(`^ {0,3}${marker[0] === '`' ? '`' : '~'}{${marker.length},}\\s*$`).test(lines[i]!)) body.push(lines[i++]!);
      i++;
      blocks.push({ kind: 'code', lang: fence[2] ?? '', lines: body });
      continue;
    }
    const sep = lines[i + 1];
    if (line.includes('|') && sep !== undefined && TABLE_SEPARATOR.test(sep)) {
      const head = cells(line);
      const align = cells(sep).map((c) => (/^:-+:$/.test(c) ? 'center' : /^-+:$/.test(c) ? 'right' : /^:-+$/.test(c) ? 'left' : '') as 'left' | 'center' | 'right' | '');
      const rows: string[][] = [];
      i += 2;
      while (i < lines.length && lines[i]!.includes('|') && !/^\s*$/.test(lines[i]!)) rows.push(cells(lines[i++]!));
      blocks.push({ kind: 'table', align, head, rows });
      continue;
    }
    if (/^\s*$/.test(line)) {
      blocks.push({ kind: 'p', lines: [] });
      i++;
      continue;
    }
    const h = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      blocks.push({ kind: 'h', level: h[1]!.length, text: h[2]! });
      i++;
      continue;
    }
    if (/^ {0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      blocks.push({ kind: 'hr' });
      i++;
      continue;
    }
    const q = /^ {0,3}>\s?(.*)$/.exec(line);
    if (q) {
      const prev = blocks.at(-1);
      if (prev?.kind === 'quote') prev.lines.push(q[1]!);
      else blocks.push({ kind: 'quote', lines: [q[1]!] });
      i++;
      continue;
    }
    const li = /^ {0,3}(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/.exec(line);
    if (li) {
      const ordered = li[2] !== undefined;
      const prev = blocks.at(-1);
      if (prev?.kind === 'list' && prev.ordered === ordered) prev.items.push([li[3]!]);
      else blocks.push({ kind: 'list', ordered, start: ordered ? Number(li[2]) : 1, items: [[li[3]!]] });
      i++;
      continue;
    }
    const prev = blocks.at(-1);
    if (prev?.kind === 'list' && /^\s{2,}\S/.test(line)) {
      prev.items.at(-1)!.push(line.trim());
      i++;
      continue;
    }
    para().lines.push(line);
    i++;
  }
  return blocks;
}

const TABLE_SEPARATOR = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

/** The cells of a table row (`| a | b |`); `\|` is a literal bar. */
function cells(row: string): string[] {
  const t = row.trim().replace(/^\|/, '').replace(/(?<!\\)\|$/, '');
  return t.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

export function renderMarkdown(text: string): RenderedMarkdown {
  const codeBlocks: RenderedMarkdown['codeBlocks'] = [];
  const html: string[] = [];
  for (const b of parseBlocks(text)) {
    switch (b.kind) {
      case 'p':
        if (b.lines.length) html.push(`<p>${b.lines.map((l) => renderInline(l.trim())).join('<br>')}</p>`);
        break;
      case 'h':
        html.push(`<h${b.level}>${renderInline(b.text)}</h${b.level}>`);
        break;
      case 'hr':
        html.push('<hr>');
        break;
      case 'quote':
        html.push(`<blockquote>${renderMarkdown(b.lines.join('\n')).html}</blockquote>`);
        break;
      case 'list': {
        const tag = b.ordered ? 'ol' : 'ul';
        const start = b.ordered && b.start !== 1 ? ` start="${b.start}"` : '';
        html.push(`<${tag}${start}>${b.items.map((it) => `<li>${it.map(renderInline).join('<br>')}</li>`).join('')}</${tag}>`);
        break;
      }
      case 'table': {
        const cell = (tag: 'th' | 'td', text: string, i: number) => {
          const a = b.align[i];
          return `<${tag}${a ? ` style="text-align:${a}"` : ''}>${renderInline(text)}</${tag}>`;
        };
        const width = b.head.length;
        const row = (r: string[], tag: 'th' | 'td') => `<tr>${Array.from({ length: width }, (_, i) => cell(tag, r[i] ?? '', i)).join('')}</tr>`;
        html.push(`<div class="table-wrap"><table><thead>${row(b.head, 'th')}</thead><tbody>${b.rows.map((r) => row(r, 'td')).join('')}</tbody></table></div>`);
        break;
      }
      case 'code': {
        const index = codeBlocks.length;
        const code = b.lines.join('\n');
        codeBlocks.push({ lang: b.lang, code });
        const lang = b.lang ? `<span class="code-lang">${escapeHtml(b.lang)}</span>` : '';
        html.push(
          `<div class="code-block" data-code-index="${index}"><div class="code-actions">${lang}` +
            `<button class="copy-code" data-code-index="${index}" title="Copy">Copy</button>` +
            `<button class="insert-code" data-code-index="${index}" title="Insert at the cursor">Insert</button>` +
            `<button class="apply-code" data-code-index="${index}" title="Show the change as a diff against the active editor (its selection, or the whole file)">Apply…</button></div>` +
            `<pre><code>${highlight(code, b.lang)}</code></pre></div>`,
        );
        break;
      }
    }
  }
  return { html: html.join('\n'), codeBlocks };
}

/** DOM helpers for the demo page: elements from data (never HTML strings), hex structures, panels. */
import { toHex } from './blindRsa.js';

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export interface Ref {
  label: string;
  href: string;
}

/** A link that leaves the page only when clicked (the RFCs), or a same-origin docs page. */
export function refLink(r: Ref): HTMLAnchorElement {
  const external = !r.href.startsWith('/');
  return h('a', { href: r.href, class: external ? 'ref ext' : 'ref', ...(external ? { target: '_blank', rel: 'noreferrer noopener' } : {}) }, r.label);
}

export const short = (b: Uint8Array, n = 8): string => `${toHex(b.subarray(0, n))}…`;

export interface Field {
  name: string;
  bytes: Uint8Array;
  note?: string;
}

/** One wire structure: its RFC name, each field's name, length and bytes in hex, and where it is specified. */
export function struct(name: string, fields: Field[], refs: Ref[], caption?: string): HTMLElement {
  const total = fields.reduce((n, f) => n + f.bytes.length, 0);
  return h(
    'figure',
    { class: 'struct', 'data-struct': name },
    h('figcaption', {}, h('span', { class: 'sname' }, name), h('span', { class: 'slen' }, ` ${total} bytes`), caption ? h('span', { class: 'scap' }, ` — ${caption}`) : null, h('span', { class: 'refs' }, ...refs.map(refLink))),
    ...fields.map((f, i) =>
      h(
        'div',
        { class: `field f${i % 6}` },
        h('div', { class: 'fhead' }, h('code', { class: 'fname' }, f.name), h('span', { class: 'flen' }, `${f.bytes.length} B`), f.note ? h('span', { class: 'fnote' }, f.note) : null),
        h('code', { class: 'hex' }, toHex(f.bytes)),
      ),
    ),
  );
}

export interface Row {
  k: string;
  v: string | Node;
  mono?: boolean;
}

export function rows(list: Row[]): HTMLElement {
  return h('dl', { class: 'rows' }, ...list.flatMap((r) => [h('dt', {}, r.k), h('dd', r.mono ? { class: 'mono' } : {}, r.v)]));
}

export function nothing(why: string): HTMLElement {
  return h('p', { class: 'nothing' }, why);
}

export const time = (d: Date): string => d.toISOString().slice(11, 23) + ' UTC';

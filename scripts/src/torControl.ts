/**
 * A small client for Tor's control protocol (control-spec.txt), enough for the
 * test network harness: cookie authentication, commands with multi-line and data
 * replies, GETINFO, SETEVENTS and asynchronous events.
 *
 * API:
 * - `TorControl.connect(port, cookiePath, { host?, timeoutMs? })` → an authenticated
 *   connection (AUTHENTICATE with the hex of the cookie file).
 * - `ctl.command(line)` → `ControlReply` (`{ code, lines }`); rejects with
 *   `TorControlError` when the status code is not 2xx. Commands are answered in order.
 * - `ctl.getInfo(key)` → the value of one GETINFO key (single- or multi-line).
 * - `ctl.setEvents(['STREAM', …])`; `ctl.on('event', (e: ControlEvent) => …)` where
 *   `e.type` is the first word after `650` (e.g. `STREAM`) and `e.line` the whole event.
 * - `ctl.close()`.
 * - `parseCircuitStatus(text)` parses `GETINFO circuit-status` into `CircuitStatus[]`.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';

export interface ControlReply {
  /** Status code of the final line (e.g. 250). */
  code: number;
  /** Each reply line without the status code and separator; data blocks (`250+`) are
   * joined to their key line with '\n'. */
  lines: string[];
}

export interface ControlEvent {
  /** Event name, e.g. `STREAM`, `CIRC`, `HS_DESC`, `STATUS_CLIENT`. */
  type: string;
  /** The event text after `650 ` (the first line for multi-line events). */
  line: string;
  /** All lines of the event (for multi-line events). */
  lines: string[];
}

export class TorControlError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'TorControlError';
  }
}

interface Pending {
  resolve: (r: ControlReply) => void;
  reject: (e: Error) => void;
}

export interface CircuitHop {
  fingerprint: string;
  nickname?: string;
}

export interface CircuitStatus {
  id: string;
  status: string;
  hops: CircuitHop[];
  /** KEY=VALUE fields such as PURPOSE, BUILD_FLAGS, SOCKS_USERNAME, REND_QUERY. */
  fields: Record<string, string>;
}

/** Parse the text of `GETINFO circuit-status` (one circuit per line). */
export function parseCircuitStatus(text: string): CircuitStatus[] {
  const out: CircuitStatus[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const words = splitQuoted(line);
    const [id, status, ...rest] = words;
    if (!id || !status) continue;
    let hops: CircuitHop[] = [];
    if (rest[0] && rest[0].startsWith('$')) {
      hops = rest[0].split(',').map(parseHop);
      rest.shift();
    }
    const fields: Record<string, string> = {};
    for (const w of rest) {
      const eq = w.indexOf('=');
      if (eq > 0) fields[w.slice(0, eq)] = unquote(w.slice(eq + 1));
    }
    out.push({ id, status, hops, fields });
  }
  return out;
}

function parseHop(s: string): CircuitHop {
  // "$FINGERPRINT~nick" or "$FINGERPRINT=nick" or "$FINGERPRINT"
  const m = /^\$([0-9A-Fa-f]{40})(?:[~=](.*))?$/.exec(s);
  if (!m) return { fingerprint: s.replace(/^\$/, '') };
  const hop: CircuitHop = { fingerprint: m[1]!.toUpperCase() };
  if (m[2]) hop.nickname = m[2];
  return hop;
}

/** Split on spaces, keeping "quoted strings" (with backslash escapes) together. */
export function splitQuoted(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (inQuote) {
      cur += c;
      if (c === '\\' && i + 1 < line.length) {
        cur += line[++i]!;
      } else if (c === '"') {
        inQuote = false;
      }
    } else if (c === ' ') {
      if (cur) out.push(cur);
      cur = '';
    } else {
      if (c === '"') inQuote = true;
      cur += c;
    }
  }
  if (cur) out.push(cur);
  return out;
}

function unquote(s: string): string {
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) {
    return s.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return s;
}

/** Quote a string for use as a control-protocol argument. */
export function quote(s: string): string {
  return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

export class TorControl extends EventEmitter {
  private buf = '';
  private readonly pending: Pending[] = [];
  /** Lines of the reply (or event) currently being read. */
  private curLines: string[] = [];
  private curIsEvent = false;
  /** When non-null, we are inside a data block (`XYZ+…` until a line with '.'). */
  private dataLines: string[] | null = null;
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    super();
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', (e) => this.failAll(e));
    sock.on('close', () => {
      this.closed = true;
      this.failAll(new Error('tor control connection closed'));
      this.emit('close');
    });
  }

  /** Connect and authenticate with the cookie file (CookieAuthentication 1). */
  static async connect(
    port: number,
    cookiePath: string,
    opts: { host?: string; timeoutMs?: number } = {},
  ): Promise<TorControl> {
    const host = opts.host ?? '127.0.0.1';
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`tor control ${host}:${port}: connect timeout`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const ctl = new TorControl(sock);
    try {
      const cookie = await readFile(cookiePath);
      await ctl.command(`AUTHENTICATE ${cookie.toString('hex')}`);
    } catch (e) {
      ctl.close();
      throw e;
    }
    return ctl;
  }

  /** Send one command line (without CRLF); resolves with its reply. */
  command(line: string): Promise<ControlReply> {
    if (this.closed) return Promise.reject(new Error('tor control connection closed'));
    return new Promise<ControlReply>((resolve, reject) => {
      this.pending.push({
        resolve: (r) => {
          if (r.code >= 200 && r.code < 300) resolve(r);
          else
            reject(
              new TorControlError(`tor control: ${line.split(' ')[0]} → ${r.code} ${r.lines.join(' | ')}`, r.code),
            );
        },
        reject,
      });
      this.sock.write(line + '\r\n');
    });
  }

  /** GETINFO of one key; returns its value (multi-line values joined with '\n'). */
  async getInfo(key: string): Promise<string> {
    const r = await this.command(`GETINFO ${key}`);
    for (const l of r.lines) {
      if (l.startsWith(key + '=')) return l.slice(key.length + 1);
      if (l.startsWith(key + '\n')) return l.slice(key.length + 1);
    }
    throw new Error(`tor control: GETINFO ${key}: key missing in reply`);
  }

  async setEvents(events: string[]): Promise<void> {
    await this.command(`SETEVENTS ${events.join(' ')}`.trimEnd());
  }

  close(): void {
    if (!this.closed) {
      this.closed = true;
      this.sock.end();
      this.sock.destroy();
    }
  }

  private onData(d: string): void {
    this.buf += d;
    let idx: number;
    while ((idx = this.buf.indexOf('\n')) >= 0) {
      let line = this.buf.slice(0, idx);
      this.buf = this.buf.slice(idx + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    if (this.dataLines) {
      if (line === '.') {
        const data = this.dataLines;
        this.dataLines = null;
        const key = this.curLines.pop() ?? '';
        this.curLines.push(key + '\n' + data.join('\n'));
      } else {
        this.dataLines.push(line.startsWith('..') ? line.slice(1) : line);
      }
      return;
    }
    const m = /^(\d{3})([ +-])(.*)$/.exec(line);
    if (!m) return; // protocol noise; ignore
    const code = Number(m[1]);
    const sep = m[2]!;
    const text = m[3]!;
    if (this.curLines.length === 0) this.curIsEvent = code >= 600 && code < 700;
    if (sep === '+') {
      // "250+key=" then data lines until "."; keep the key without a trailing '='.
      this.curLines.push(text.endsWith('=') ? text.slice(0, -1) : text);
      this.dataLines = [];
      return;
    }
    this.curLines.push(text);
    if (sep === ' ') {
      const lines = this.curLines;
      this.curLines = [];
      if (this.curIsEvent) {
        const first = lines[0] ?? '';
        const type = first.split(' ')[0] ?? '';
        this.emit('event', { type, line: first, lines } satisfies ControlEvent);
      } else {
        const p = this.pending.shift();
        p?.resolve({ code, lines });
      }
    }
  }

  private failAll(e: Error): void {
    while (this.pending.length) this.pending.shift()!.reject(e);
  }
}

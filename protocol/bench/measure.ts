/** Tiny measurement helpers: ops/s over a fixed duration, median of several runs. */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';

/** "<model name> (<n> CPUs)" from /proc/cpuinfo (os.cpus() elsewhere): the figures depend on it. */
export function cpuModel(): string {
  let model: string | undefined;
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim();
  } catch {
    /* not Linux */
  }
  return `${model ?? cpus()[0]?.model ?? 'unknown CPU'} (${availableParallelism()} CPUs)`;
}

/** One line per raised target (issue 12): "target <what>: met|MISSED — ratio — CPU model". */
export function targetLine(what: string, ratio: number, target: number): string {
  return `target ${what} >= ${Math.round(target * 100)} %: ${ratio >= target ? 'met' : 'MISSED'} — ${(ratio * 100).toFixed(1)} % — ${cpuModel()}`;
}
export function opsPerSec(f: () => void, ms: number): number {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    for (let i = 0; i < 16; i++) f();
    n += 16;
  }
  return (n * 1000) / (performance.now() - start);
}

/**
 * Operations per second of this thread's CPU time (`process.cpuUsage`, user + system),
 * run for `ms` of CPU time: comparable with `openssl speed`, which also counts CPU seconds,
 * and steady on a shared machine where wall time depends on the other processes.
 */
export function opsPerCpuSec(f: () => void, ms: number): number {
  const c0 = process.cpuUsage();
  const used = () => {
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000;
  };
  let n = 0;
  while (used() < ms) {
    for (let i = 0; i < 16; i++) f();
    n += 16;
  }
  return (n * 1000) / used();
}

export async function opsPerSecAsync(f: () => Promise<unknown>, ms: number, batch = 1): Promise<number> {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    await f();
    n += batch;
  }
  return (n * 1000) / (performance.now() - start);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

export function ratioLine(label: string, value: number, reference: number, target?: number): string {
  const r = value / reference;
  const verdict = target === undefined ? '' : r >= target ? `  (target >= ${Math.round(target * 100)} %: met)` : `  (target >= ${Math.round(target * 100)} %: MISSED)`;
  return `${label.padEnd(48)} ${(r * 100).toFixed(1).padStart(6)} %${verdict}`;
}

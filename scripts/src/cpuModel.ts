import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';

/**
 * "<model name> (<n> CPUs)" from /proc/cpuinfo (os.cpus() elsewhere), printed with every benchmark
 * figure: the figures depend on it, and the machines differ from one session to the next.
 */
export function cpuModel(): string {
  let model: string | undefined;
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim();
  } catch {
    /* not Linux */
  }
  return `${model ?? cpus()[0]?.model ?? 'unknown CPU'} (${availableParallelism()} CPUs)`;
}

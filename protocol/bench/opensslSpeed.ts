/** Reference figures from `openssl speed -seconds N rsa2048` measured in the same run. */
import { execFileSync } from 'node:child_process';

export interface OpensslRsa {
  signPerSec: number;
  verifyPerSec: number;
  version: string;
}

export function opensslSpeedRsa2048(seconds = 3): OpensslRsa {
  const out = execFileSync('openssl', ['speed', '-seconds', String(seconds), 'rsa2048'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  // "rsa 2048 bits 0.000248s 0.000016s   4032.3  61953.2"
  const m = /rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)/.exec(out);
  if (!m) throw new Error(`could not parse openssl speed output:\n${out}`);
  const version = execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
  return { signPerSec: Number(m[1]), verifyPerSec: Number(m[2]), version };
}

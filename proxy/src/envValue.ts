/** Reading one environment variable into a typed value; a value that does not parse becomes a problem line, not a crash. */
export type EnvKind = 'string' | 'int' | 'bool' | 'list' | 'json';

/** Returns the parsed value, or undefined (and pushes a problem) if it does not parse. Values are never echoed for strings that may be secrets. */
export function parseEnvValue(name: string, raw: string, kind: EnvKind, problems: string[]): unknown {
  switch (kind) {
    case 'string':
      return raw;
    case 'int':
      if (!/^-?\d+$/.test(raw.trim())) {
        problems.push(`${name}: must be an integer, got ${JSON.stringify(raw)}`);
        return undefined;
      }
      return Number(raw.trim());
    case 'bool': {
      const t = raw.trim().toLowerCase();
      if (!['1', '0', 'true', 'false', 'yes', 'no'].includes(t)) {
        problems.push(`${name}: must be true or false, got ${JSON.stringify(raw)}`);
        return undefined;
      }
      return ['1', 'true', 'yes'].includes(t);
    }
    case 'list':
      return raw.split(/[,\s]+/).filter((s) => s.length > 0);
    case 'json':
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        problems.push(`${name}: must be JSON`);
        return undefined;
      }
  }
}

/**
 * Structured logs (pino). Secrets are redacted by path as a second line of
 * defence; the first is not passing them to the logger at all. No request
 * logger here records client IPs or headers.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["stripe-signature"]',
  'accountKey',
  'account_key',
  '*.accountKey',
  '*.account_key',
  'adminToken',
  '*.adminToken',
  'pepper',
  '*.pepper',
  'secretKey',
  '*.secretKey',
  'webhookSecret',
  '*.webhookSecret',
  'apiKey',
  '*.apiKey',
  'apiKeys',
  '*.apiKeys',
  'privateKey',
  '*.privateKey',
  'token',
  '*.token',
  'tokens',
  '*.tokens',
];

export function createLogger(opts: { level?: string; name?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'llmtor-proxy',
      level: opts.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    opts.destination,
  );
}

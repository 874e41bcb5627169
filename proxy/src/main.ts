#!/usr/bin/env node
/** Process entry: configuration from env (+ LLMTOR_CONFIG_FILE), listen, graceful shutdown on SIGTERM/SIGINT. */
import { ConfigError, loadConfig } from './config.js';
import { startProxy } from './stack.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`llmtor-proxy: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  let proxy;
  try {
    proxy = await startProxy(config);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`llmtor-proxy: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const shutdown = (signal: string) => {
    proxy.logger.info({ signal }, 'shutting down: finishing in-flight requests');
    proxy.stop().then(
      () => {
        proxy.logger.info('stopped');
        process.exit(0);
      },
      (e: unknown) => {
        proxy.logger.error({ err: (e as Error).message }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  process.stderr.write(`llmtor-proxy: failed to start: ${(e as Error).message}\n`);
  process.exit(1);
});

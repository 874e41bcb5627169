/** @llmtor/proxy: programmatic entry points (the process entry is main.ts). */
export { loadConfig, configSchema, ConfigError, type ProxyConfig, type ProxyConfigInput, type CreditPack } from './config.js';
export { buildProxy, redemptionSection, startProxy, type BuiltProxy, type RunningProxy, type ProxyOverrides } from './stack.js';
export { redemptionConfigSchema } from './redemption/config.js';
export { createLogger } from './logger.js';
export { startLocalStack, type LocalStack } from './localStack.js';
export type { AppDeps, RoleModule, Role } from './appTypes.js';
export { KeyManager } from './keys/keyManager.js';
export { DirectoryKeySource } from './keys/directoryKeySource.js';
export { EphemeralKeySource, generateEphemeralKeys } from './keys/ephemeralKeySource.js';
export type { KeySource, LoadedKeys } from './keys/keySource.js';
export { checkJournal, type JournalEntry, type LedgerCheck } from './ledger/journal.js';

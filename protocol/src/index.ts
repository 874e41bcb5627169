/** @llmtor/protocol — shared by the proxy, the operator and the VS Code extension. */
export * from './account.js';
export * from './authParams.js';
export * from './authScheme.js';
export * from './batch.js';
export * from './bytes.js';
export * from './challenge.js';
export * from './constants.js';
export * from './directory.js';
export * from './errors.js';
export * from './keyFile.js';
export * from './keyId.js';
export * from './keyPurpose.js';
export * from './keyring.js';
export * from './nativeBlind.js';
export { blindCore, finalizeCore, type BlindCoreInput, type BlindCoreOutput, type FinalizeCoreInput } from './nativeBlindCore.js';
export * from './token.js';
export * from './tokenRequest.js';
export * from './verifier.js';

/**
 * Old module name of tokenMinter.ts, kept while vscode/controller.ts still imports from it
 * (it is being edited on another branch); import from './tokenMinter.js'.
 */
export { MAX_DIRECTORY_AGE_MS, NoIssuingKeyError, TokenMinter, TokenMinter as TokenIssuer, type IssueResult, type TokenMinterDeps } from './tokenMinter.js';

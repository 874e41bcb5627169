/**
 * Old module name of issuanceApi.ts, kept while vscode/controller.ts still imports from it
 * (it is being edited on another branch); import from './issuanceApi.js'.
 */
export { IssuanceApi, IssuanceApi as IdentityApi, normalizeAccountKey, type AccountInfo, type CreditPack } from './issuanceApi.js';

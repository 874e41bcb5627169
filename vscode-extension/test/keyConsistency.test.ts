import assert from 'node:assert/strict';
import type { IssuerDirectory } from '@llmtor/protocol';
import { checkKeyConsistency, KeyConsistencyError } from '../src/core/keyConsistency.js';

const publicDir: IssuerDirectory = {
  'issuer-request-uri': '/token-request',
  'token-keys': [
    { 'token-type': 2, 'token-key': 'AAEC', purpose: 'credit' },
    { 'token-type': 2, 'token-key': 'AwQF', purpose: 'transient', epoch: '2026-11' },
  ],
};

describe('key consistency', () => {
  it('accepts a key that the directory fetched over Tor shows with the same purpose', () => {
    checkKeyConsistency({ tokenKey: 'AAEC', purpose: 'credit' }, publicDir);
    checkKeyConsistency({ tokenKey: 'AwQF', purpose: 'transient', epoch: '2026-11' }, publicDir);
  });

  it('refuses a key that only this client was shown', () => {
    assert.throws(() => checkKeyConsistency({ tokenKey: 'BgcI', purpose: 'credit' }, publicDir), KeyConsistencyError);
  });

  it('refuses a known key offered for another purpose or epoch', () => {
    assert.throws(() => checkKeyConsistency({ tokenKey: 'AAEC', purpose: 'permanent' }, publicDir), /lists as "credit"/);
    assert.throws(() => checkKeyConsistency({ tokenKey: 'AwQF', purpose: 'transient', epoch: '2026-12' }, publicDir), /epoch/);
  });
});

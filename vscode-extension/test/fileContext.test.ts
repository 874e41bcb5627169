/**
 * `#file` context (core/fileContext.ts): the block a message is sent as, the caps with their
 * messages, the `#query` at the caret and the file matching behind the completion list.
 */
import assert from 'node:assert/strict';
import { attachmentProblem, hashQueryAt, looksBinary, matchFiles, MAX_CONTEXT_BYTES, MAX_FILE_BYTES, MAX_FILES, withContext } from '../src/core/fileContext.js';

describe('#file context', () => {
  it('sends the prompt unchanged without files, and files as delimited blocks before it', () => {
    assert.equal(withContext('hello', []), 'hello');
    assert.equal(withContext('hello', undefined), 'hello');
    const text = withContext('What does this do?', [
      { path: 'src/a.ts', text: 'export const a = 1;\n' },
      { path: 'README', text: 'no newline at end' },
    ]);
    assert.equal(
      text,
      '<attached-files count="2">\nFile: src/a.ts\n```ts\nexport const a = 1;\n```\n\nFile: README\n```\nno newline at end\n```\n</attached-files>\n\nWhat does this do?',
    );
  });

  it('fences a file that contains backticks with a longer fence, so it cannot end the block early', () => {
    const md = 'text\n```js\nx\n```\nand ````four````';
    const text = withContext('q', [{ path: 'doc.md', text: md }]);
    assert.ok(text.includes('`````md\n' + md + '\n`````'), text);
  });

  it('caps a file, all files of a message and their number, with a message that says what to do', () => {
    const one = (path: string, bytes: number) => ({ path, text: 'x'.repeat(bytes) });
    assert.equal(attachmentProblem([], { path: 'a.ts', bytes: 10, binary: false }), undefined);
    assert.match(attachmentProblem([], { path: 'big.log', bytes: MAX_FILE_BYTES + 1, binary: false }) ?? '', /big\.log is 200 kB; a file can be attached up to 200 kB\. Select the part you need/);
    assert.equal(attachmentProblem([], { path: 'ok.log', bytes: MAX_FILE_BYTES, binary: false }), undefined);
    assert.match(attachmentProblem([], { path: 'img.png', bytes: 10, binary: true }) ?? '', /not a text file/);
    assert.match(attachmentProblem([one('a.ts', 1)], { path: 'a.ts', bytes: 1, binary: false }) ?? '', /attached already/);
    const full = [one('1', MAX_FILE_BYTES), one('2', MAX_FILE_BYTES)];
    assert.equal(attachmentProblem(full, { path: '3', bytes: MAX_CONTEXT_BYTES - 2 * MAX_FILE_BYTES, binary: false }), undefined);
    assert.match(attachmentProblem(full, { path: '3', bytes: MAX_CONTEXT_BYTES - 2 * MAX_FILE_BYTES + 1, binary: false }) ?? '', /would be 500 kB; one message can carry up to 500 kB of files\. Remove one first/);
    const many = Array.from({ length: MAX_FILES }, (_, i) => one(`f${i}`, 1));
    assert.match(attachmentProblem(many, { path: 'one-more', bytes: 1, binary: false }) ?? '', /At most 20 files/);
  });

  it('counts multi-byte text in UTF-8 bytes', () => {
    const euro = '€'.repeat((MAX_CONTEXT_BYTES - MAX_FILE_BYTES) / 3); // 3 bytes each: 300 kB in 100 000 characters
    assert.equal(attachmentProblem([{ path: 'a', text: euro }], { path: 'b', bytes: MAX_FILE_BYTES, binary: false }), undefined);
    assert.ok(attachmentProblem([{ path: 'a', text: euro + '€' }], { path: 'b', bytes: MAX_FILE_BYTES, binary: false }));
  });

  it('detects binary files by a NUL byte near the start', () => {
    assert.equal(looksBinary(new TextEncoder().encode('plain text')), false);
    assert.equal(looksBinary(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01])), true);
  });

  it('finds the #query being typed at the caret, and nothing inside words or after a space', () => {
    assert.deepEqual(hashQueryAt('#', 1), { query: '', start: 0 });
    assert.deepEqual(hashQueryAt('look at #src/ma', 15), { query: 'src/ma', start: 8 });
    assert.deepEqual(hashQueryAt('look at #src/ma and more', 15), { query: 'src/ma', start: 8 });
    assert.equal(hashQueryAt('issue#12', 8), undefined);
    assert.equal(hashQueryAt('#done ', 6), undefined);
    assert.equal(hashQueryAt('', 0), undefined);
  });

  it('ranks matching files: name prefix, name, path, then characters in order; skips dependencies', () => {
    const paths = ['src/controller.ts', 'test/controllerChat.test.ts', 'src/core/history.ts', 'docs/control-plane.md', 'node_modules/x/controller.js', 'src/vscode/chatSession.ts', '.git/config'];
    assert.deepEqual(matchFiles(paths, 'control'), ['src/controller.ts', 'docs/control-plane.md', 'test/controllerChat.test.ts']);
    assert.equal(matchFiles(paths, 'core')[0], 'src/core/history.ts', 'a path match before looser ones');
    assert.deepEqual(matchFiles(paths, 'VCS'), ['src/vscode/chatSession.ts']);
    assert.deepEqual(matchFiles(paths, 'zzz'), []);
    assert.equal(matchFiles(paths, '').length, 5);
    assert.equal(matchFiles(paths, '', 2).length, 2);
  });
});

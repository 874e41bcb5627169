/** Inline edits (core/inlineEdit.ts): the message sent and the code read back from the answer. */
import assert from 'node:assert/strict';
import { editPrompt, extractEditedCode } from '../src/core/inlineEdit.js';

describe('inline edit', () => {
  it('sends the instruction and the code in a fence, with the relative path and language', () => {
    const p = editPrompt({ instruction: '  add types ', path: 'src/a.js', languageId: 'javascript', code: 'function f(x) {\n  return x;\n}\n', wholeFile: false });
    assert.match(p, /^Edit this part of src\/a\.js \(javascript\)/);
    assert.match(p, /Instruction: add types\n/);
    assert.ok(p.endsWith('```javascript\nfunction f(x) {\n  return x;\n}\n```'), p);
    const withTicks = editPrompt({ instruction: 'x', path: 'r.md', languageId: 'markdown', code: '```js\nx\n```', wholeFile: true });
    assert.match(withTicks, /^Edit the whole file r\.md/);
    assert.ok(withTicks.endsWith('````markdown\n```js\nx\n```\n````'), withTicks);
  });

  it('reads the code from the first fenced block, or the whole answer without one, keeping the original line ending', () => {
    assert.equal(extractEditedCode('Here you go:\n```ts\nconst a: number = 1;\n```\nDone.', 'const a = 1;\n'), 'const a: number = 1;\n');
    assert.equal(extractEditedCode('```\nx\n```', 'y'), 'x');
    assert.equal(extractEditedCode('  just code  \n', 'y\n'), 'just code\n');
    assert.equal(extractEditedCode('```js\n```', 'y'), '');
    // A block that contains a shorter fence is read whole.
    assert.equal(extractEditedCode('````md\n```js\nx\n```\n````', ''), '```js\nx\n```');
    // Several blocks: the longest is the code, the others are usually usage examples.
    assert.equal(extractEditedCode('```\nf()\n```\nand\n```\nfunction f() {\n  return 1;\n}\n```', ''), 'function f() {\n  return 1;\n}');
  });
});

#!/usr/bin/env node
// Runs every workspace's mocha suite in turn, streams its output, and ends with one
// summary line ("tests: N passed, N failed, N skipped") so CI can read the result.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const root = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const only = process.argv.slice(2);
const workspaces = root.workspaces.filter((w) => only.length === 0 || only.includes(w));
const totals = { passed: 0, failed: 0, skipped: 0 };
const broken = [];
// Mocha's failure reports, kept so the run's last lines say which tests failed and why
// (CI shows only the tail of the output).
const failures = [];

for (const ws of workspaces) {
  const pkg = JSON.parse(readFileSync(new URL(`../${ws}/package.json`, import.meta.url), 'utf8'));
  if (!pkg.scripts?.test) continue;
  console.log(`\n=== ${ws} ===`);
  const started = Date.now();
  const { code, out } = await new Promise((resolve) => {
    const child = spawn('npm', ['run', 'test', '--silent', '-w', ws], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      out += d.toString();
    });
    child.on('close', (code) => resolve({ code, out }));
  });
  const count = (re) => Number(re.exec(out)?.[1] ?? 0);
  const passed = count(/(\d+) passing/);
  const failed = count(/(\d+) failing/);
  const skipped = count(/(\d+) pending/);
  totals.passed += passed;
  totals.failed += failed;
  totals.skipped += skipped;
  if (code !== 0 && failed === 0) broken.push(`${ws} (exit ${code})`);
  const report = /\n\s*\d+ failing\n([\s\S]*)$/.exec(out)?.[1].trim();
  if (failed > 0 && report) failures.push(`--- ${ws} ---\n${report.length > 4000 ? `${report.slice(0, 4000)}\n[...]` : report}`);
  console.log(`=== ${ws}: ${passed} passed, ${failed} failed, ${skipped} skipped in ${((Date.now() - started) / 1000).toFixed(1)} s ===`);
}

if (broken.length) console.log(`suites that exited without a result: ${broken.join(', ')}`);
const summary = `tests: ${totals.passed} passed, ${totals.failed + broken.length} failed, ${totals.skipped} skipped`;
console.log(`\n${summary}`);
// The Makefile prints this again after the coverage report, so it is the run's last line.
mkdirSync(new URL('../test-artifacts/', import.meta.url), { recursive: true });
const failed = failures.length ? `failed tests:\n${failures.join('\n')}\n\n` : '';
writeFileSync(new URL('../test-artifacts/test-summary.txt', import.meta.url), `${failed}${summary}\n`);
process.exit(totals.failed > 0 || broken.length > 0 || totals.passed === 0 ? 1 : 0);

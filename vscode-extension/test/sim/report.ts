/**
 * Prints the linkage simulation report (docs/privacy.md): `npm run sim:linkage -w vscode-extension`
 * after a build, or `node vscode-extension/dist/test/sim/report.js [seeds]`.
 */
import { simulate, type MatchReport } from './linkageSim.js';

const seeds = Number(process.argv[2] ?? 5);
const started = Date.now();
const results = Array.from({ length: seeds }, (_, s) => simulate(1000 + s));
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const mean = (pick: (r: (typeof results)[number]) => MatchReport) => {
  const out: Record<string, number> = {};
  for (const k of Object.keys(pick(results[0]!).byStrategy)) out[k] = results.reduce((a, r) => a + pick(r).byStrategy[k]!, 0) / results.length;
  return { byStrategy: out, best: Math.max(...Object.values(out)) };
};
const n = results[0]!.n;
console.log(`Linkage simulation: N = ${n} users, ${seeds} seeds, one-day windows (7 per seed) and one 30-day month; chance = ${pct(1 / n)}`);
for (const [label, pick] of [
  ['day, new client (refill schedule)', (r: (typeof results)[number]) => r.dayNew],
  ['day, old client (refill after each chat)', (r: (typeof results)[number]) => r.dayOld],
  ['month, new client', (r: (typeof results)[number]) => r.monthNew],
  ['month, old client', (r: (typeof results)[number]) => r.monthOld],
] as const) {
  const m = mean(pick);
  console.log(`${label.padEnd(42)} best ${pct(m.best).padStart(7)}  (${Object.entries(m.byStrategy).map(([k, v]) => `${k} ${pct(v)}`).join(', ')})`);
}
console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);

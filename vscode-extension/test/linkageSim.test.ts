/**
 * The linkage simulation (test/sim/linkageSim.ts) with the REAL refill plan: an operator who
 * sees every issuance and every redemption matches accounts to pseudonyms no better than
 * twice chance over a day; with the old behaviour (refill right after spending, by the amount
 * spent) the same operator links most of them. Deterministic seeds, bounded runtime.
 */
import assert from 'node:assert/strict';
import { attack, bestAssignment, mulberry32, simulate, type Behaviour } from './sim/linkageSim.js';

describe('linkage simulation (operator sees all issuances and redemptions)', function () {
  this.timeout(180_000);

  it('the matcher finds the best one-to-one assignment and links identical series perfectly', () => {
    assert.deepEqual(bestAssignment([[1, 5, 0], [4, 1, 0], [0, 0, 2]]), [1, 0, 2]);
    const rng = mulberry32(3);
    const users: Behaviour[] = Array.from({ length: 10 }, () => {
      const ev = Array.from({ length: 8 }, () => ({ at: Math.floor(rng() * 86_400_000), amount: 1 + Math.floor(rng() * 3) }));
      return { issuances: ev, redemptions: ev };
    });
    const truth = [3, 1, 4, 0, 2, 9, 8, 7, 6, 5];
    assert.equal(attack(users, truth, 0, 86_400_000).best, 1, 'a perfect leak is found');
  });

  it(`over a day: at most 2x chance with the refill schedule; the old behaviour links most accounts`, () => {
    const seeds = [11, 12, 13, 14, 15, 16, 17, 18];
    const runs = seeds.map((s) => simulate(s, { n: 50, days: 6, dayCount: 5 }));
    const strategies = Object.keys(runs[0]!.dayNew.byStrategy);
    const mean = (k: string, pick: 'dayNew' | 'dayOld') => runs.reduce((a, r) => a + r[pick].byStrategy[k]!, 0) / runs.length;
    const bestNew = Math.max(...strategies.map((k) => mean(k, 'dayNew')));
    const bestOld = Math.max(...strategies.map((k) => mean(k, 'dayOld')));
    assert.ok(bestNew <= 2 / 50, `new client: best strategy links ${(100 * bestNew).toFixed(1)} % (goal <= 4 %)`);
    assert.ok(bestOld >= 0.3, `old behaviour is linkable (${(100 * bestOld).toFixed(1)} %): the adversary works`);
  });
});

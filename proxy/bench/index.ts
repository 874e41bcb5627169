/**
 * `npm run bench -w proxy`: runs every proxy benchmark in turn. A bench is an
 * entry of this list (name + run function that prints its own figures).
 */
import { runDurableClaimBench } from './durableClaimBench.js';
import { runIssuanceBench } from './issuanceBench.js';
import { runRedemptionBench } from './redemptionBench.js';
import { runRedemptionStepsBench } from './redemptionStepsBench.js';
import { runSpentMemoryBench } from './spentMemoryBench.js';

const benches: { name: string; run: () => Promise<unknown> }[] = [
  { name: 'issuance (HTTP batched vs raw signer)', run: () => runIssuanceBench() },
  { name: 'redemption (full redemption vs bare Koa pass-through)', run: () => runRedemptionBench() },
  { name: 'redemption steps (CPU per request of each step the redemption adds)', run: () => runRedemptionStepsBench() },
  { name: 'durable claims (claim with and without WAIT 1, healthy replica on loopback)', run: () => runDurableClaimBench() },
  { name: 'spent-set memory per token (100 000 tokens, bucket digits 3)', run: () => runSpentMemoryBench() },
  // The 10-minute soak is its own script: npm run soak -w proxy.
];

for (const b of benches) {
  process.stdout.write(`== ${b.name}\n`);
  await b.run();
}

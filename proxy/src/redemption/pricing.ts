/** Credits a request needs: k = priceCredits × ceil(bodyBytes / bytesPerCredit), at least priceCredits. */
import type { ModelConfig } from './config.js';

export function creditsNeeded(model: Pick<ModelConfig, 'priceCredits' | 'bytesPerCredit'>, bodyBytes: number): number {
  return model.priceCredits * Math.max(1, Math.ceil(bodyBytes / model.bytesPerCredit));
}

/** Largest body that `tokens` credits can pay for on the most generous model (the body limit before the model is known). */
export function maxBodyFor(models: readonly Pick<ModelConfig, 'priceCredits' | 'bytesPerCredit'>[], tokens: number, hardCap: number): number {
  let best = 0;
  for (const m of models) best = Math.max(best, Math.floor(Math.max(tokens, m.priceCredits) / m.priceCredits) * m.bytesPerCredit);
  return Math.min(best, hardCap);
}

/** GET /v1/models: the OpenAI list shape plus each model's public price. */
import type { ModelConfig } from './config.js';

export function modelList(models: readonly ModelConfig[], created: number): unknown {
  return {
    object: 'list',
    data: models.map((m) => ({
      id: m.id,
      object: 'model',
      created,
      owned_by: m.ownedBy,
      llmtor: { price_credits: m.priceCredits, bytes_per_credit: m.bytesPerCredit, ...(m.maxOutputTokens ? { max_output_tokens: m.maxOutputTokens } : {}) },
    })),
  };
}

/** Builds the configured moderator. */
import type { ModerationConfig } from '../redemption/config.js';
import { AzureContentSafetyModerator } from './azureContentSafety.js';
import { LocalRuleModerator } from './localRules.js';
import { OpenAIModerator } from './openaiModeration.js';
import type { Moderator } from './types.js';

export * from './types.js';
export { LocalRuleModerator } from './localRules.js';
export { OpenAIModerator } from './openaiModeration.js';
export { AzureContentSafetyModerator, chunkText, AZURE_TEXT_LIMIT } from './azureContentSafety.js';

class NoModeration implements Moderator {
  readonly name = 'none';
  async moderate() {
    return { flagged: false, categories: [] };
  }
}

export function createModerator(c: ModerationConfig): Moderator {
  switch (c.provider) {
    case 'local':
      return new LocalRuleModerator(c.rules);
    case 'openai':
      return new OpenAIModerator(c);
    case 'azure':
      return new AzureContentSafetyModerator(c);
    case 'none':
      return new NoModeration();
  }
}

/**
 * The default moderator: a local list of case-insensitive regular expressions,
 * compiled once; needs no account and sends nothing anywhere. Images are not
 * analysed locally (a rule list cannot see them); use a remote provider for that.
 */
import type { LocalRule } from '../redemption/config.js';
import type { ModerationInput, ModerationVerdict, Moderator } from './types.js';

export class LocalRuleModerator implements Moderator {
  readonly name = 'local';
  private readonly rules: { category: string; re: RegExp }[];
  /** One alternation of every rule: the common "nothing matched" case costs one scan per text. */
  private readonly any: RegExp | undefined;

  constructor(rules: readonly LocalRule[]) {
    this.rules = rules.map((r) => {
      try {
        return { category: r.category, re: new RegExp(r.pattern, 'iu') };
      } catch {
        throw new Error(`moderation rule ${JSON.stringify(r.id)} is not a valid regular expression`);
      }
    });
    this.any = rules.length > 0 ? new RegExp(rules.map((r) => `(?:${r.pattern})`).join('|'), 'iu') : undefined;
  }

  async moderate(input: ModerationInput): Promise<ModerationVerdict> {
    if (!this.any) return { flagged: false, categories: [] };
    const categories = new Set<string>();
    for (const t of input.texts) {
      if (!this.any.test(t)) continue;
      for (const r of this.rules) if (r.re.test(t)) categories.add(r.category);
    }
    return { flagged: categories.size > 0, categories: [...categories] };
  }
}

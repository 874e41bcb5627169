/**
 * Azure AI Content Safety adapter (as the original LLM-Tor used):
 * `POST {endpoint}/contentsafety/text:analyze?api-version=2024-09-01` with
 * `{ text, categories, outputType: 'FourSeverityLevels' }` and header
 * `Ocp-Apim-Subscription-Key`; answer `{ categoriesAnalysis: [{category, severity}] }`.
 * Text longer than the API's 10 000-character limit is split into chunks (all
 * analysed, in parallel). Images: `image:analyze` with `{ image: { content: <base64> } }`
 * for data: URLs; the service cannot fetch arbitrary URLs (only Azure blob URLs),
 * so http(s) image URLs are refused or skipped by configuration.
 */
import { z } from 'zod';
import { postJson } from './httpJson.js';
import { ModerationUnavailable, type ModerationInput, type ModerationVerdict, type Moderator } from './types.js';

export const AZURE_TEXT_LIMIT = 10_000;
const CATEGORIES = ['Hate', 'SelfHarm', 'Sexual', 'Violence'] as const;

const analysisSchema = z.object({
  categoriesAnalysis: z.array(z.object({ category: z.string(), severity: z.number().int().nullable().optional() })),
});

export interface AzureContentSafetyOptions {
  endpoint: string;
  apiKey: string;
  apiVersion: string;
  severityThresholds: Partial<Record<(typeof CATEGORIES)[number], number>>;
  remoteImages: 'block' | 'skip';
  timeoutMs: number;
}

/** Splits at the limit, preferring a whitespace boundary so a word is not cut in two. */
export function chunkText(text: string, limit = AZURE_TEXT_LIMIT): string[] {
  const out: string[] = [];
  let rest = text;
  while (rest.length > limit) {
    let cut = rest.lastIndexOf(' ', limit);
    if (cut < limit / 2) cut = limit;
    // Never split a surrogate pair.
    const code = rest.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest.length > 0) out.push(rest);
  return out;
}

export class AzureContentSafetyModerator implements Moderator {
  readonly name = 'azure';
  private readonly categories: string[];
  constructor(private readonly o: AzureContentSafetyOptions) {
    this.categories = CATEGORIES.filter((c) => o.severityThresholds[c] !== undefined);
  }

  private url(op: 'text:analyze' | 'image:analyze'): string {
    return `${this.o.endpoint.replace(/\/+$/, '')}/contentsafety/${op}?api-version=${encodeURIComponent(this.o.apiVersion)}`;
  }

  async moderate(input: ModerationInput, signal: AbortSignal): Promise<ModerationVerdict> {
    const hits = new Set<string>();
    const headers = { 'ocp-apim-subscription-key': this.o.apiKey };
    const calls: Promise<void>[] = [];
    const judge = (answer: unknown) => {
      const r = analysisSchema.safeParse(answer);
      if (!r.success) throw new ModerationUnavailable('Azure Content Safety answered in an unexpected shape');
      for (const a of r.data.categoriesAnalysis) {
        const t = this.o.severityThresholds[a.category as (typeof CATEGORIES)[number]];
        if (t !== undefined && (a.severity ?? 0) >= t) hits.add(a.category);
      }
    };
    const text = input.texts.join('\n\n');
    for (const chunk of text.length > 0 ? chunkText(text) : []) {
      calls.push(
        postJson(this.url('text:analyze'), headers, { text: chunk, categories: this.categories, outputType: 'FourSeverityLevels' }, this.o.timeoutMs, signal, 'Azure Content Safety').then(judge),
      );
    }
    for (const url of input.imageUrls) {
      const m = /^data:image\/[a-z0-9.+-]+;base64,([A-Za-z0-9+/=\s]+)$/i.exec(url);
      if (!m) {
        if (this.o.remoteImages === 'block') hits.add('UnmoderatableImage');
        continue;
      }
      const content = m[1]!.replace(/\s+/g, '');
      calls.push(
        postJson(this.url('image:analyze'), headers, { image: { content }, categories: this.categories, outputType: 'FourSeverityLevels' }, this.o.timeoutMs, signal, 'Azure Content Safety').then(judge),
      );
    }
    await Promise.all(calls);
    return { flagged: hits.size > 0, categories: [...hits] };
  }
}

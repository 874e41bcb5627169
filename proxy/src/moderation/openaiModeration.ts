/**
 * OpenAI moderation API adapter: `POST {baseUrl}/moderations` with
 * `{ model, input: [{type:'text', text}, {type:'image_url', image_url:{url}}] }`,
 * answer `{ results: [{ flagged, categories, category_scores }] }`. Texts go in
 * one request together with the first image; every further image gets its own
 * request (the omni model takes one image per input).
 */
import { z } from 'zod';
import { postJson } from './httpJson.js';
import { ModerationUnavailable, type ModerationInput, type ModerationVerdict, type Moderator } from './types.js';

const responseSchema = z.object({
  results: z
    .array(
      z.object({
        flagged: z.boolean(),
        categories: z.record(z.boolean().nullable()).default({}),
        category_scores: z.record(z.number()).default({}),
      }),
    )
    .min(1),
});

export interface OpenAIModerationOptions {
  baseUrl: string;
  apiKey: string;
  model: string;
  scoreThresholds: Record<string, number>;
  timeoutMs: number;
}

type Part = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } };

export class OpenAIModerator implements Moderator {
  readonly name = 'openai';
  constructor(private readonly o: OpenAIModerationOptions) {}

  async moderate(input: ModerationInput, signal: AbortSignal): Promise<ModerationVerdict> {
    const batches: Part[][] = [];
    const first: Part[] = [];
    if (input.texts.length > 0) first.push({ type: 'text', text: input.texts.join('\n\n') });
    const [img0, ...rest] = input.imageUrls;
    if (img0 !== undefined) first.push({ type: 'image_url', image_url: { url: img0 } });
    if (first.length > 0) batches.push(first);
    for (const url of rest) batches.push([{ type: 'image_url', image_url: { url } }]);
    const url = `${this.o.baseUrl.replace(/\/+$/, '')}/moderations`;
    const answers = await Promise.all(
      batches.map((b) => postJson(url, { authorization: `Bearer ${this.o.apiKey}` }, { model: this.o.model, input: b }, this.o.timeoutMs, signal, 'OpenAI moderation')),
    );
    const categories = new Set<string>();
    let flagged = false;
    for (const a of answers) {
      const r = responseSchema.safeParse(a);
      if (!r.success) throw new ModerationUnavailable('OpenAI moderation answered in an unexpected shape');
      for (const res of r.data.results) {
        const thresholds = Object.entries(this.o.scoreThresholds);
        if (thresholds.length === 0) {
          if (res.flagged) flagged = true;
          for (const [c, on] of Object.entries(res.categories)) if (on && res.flagged) categories.add(c);
        } else {
          for (const [c, t] of thresholds) {
            if ((res.category_scores[c] ?? 0) >= t) {
              flagged = true;
              categories.add(c);
            }
          }
        }
      }
    }
    return { flagged, categories: [...categories] };
  }
}

/**
 * Pure: the allowlisted request → the body one provider receives (model name
 * mapping, max-tokens field, cap, dropped fields). Nothing is added that the
 * client sent outside the allowlist.
 */
import type { ChatRequest } from '../redemption/chatRequest.js';
import type { RequestTransform } from '../redemption/config.js';

export function upstreamBody(req: ChatRequest, upstreamModel: string, t: RequestTransform, maxOutputTokens?: number): Record<string, unknown> {
  const body: Record<string, unknown> = { ...req, model: upstreamModel };
  // Both names mean the same cap; providers accept one or the other.
  let cap = req.max_completion_tokens ?? req.max_tokens ?? undefined;
  delete body.max_tokens;
  delete body.max_completion_tokens;
  if (maxOutputTokens !== undefined) cap = Math.min(cap ?? maxOutputTokens, maxOutputTokens);
  if (cap !== undefined) body[t.maxTokensField] = cap;
  delete body.stream_options;
  if (req.stream && t.streamUsage) body.stream_options = { include_usage: true };
  for (const f of t.dropFields) delete body[f];
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return body;
}

/** Small JSON-over-HTTP helper for moderation providers (global fetch; no client headers ever pass through). */
import { ModerationUnavailable } from './types.js';

export async function postJson(url: string, headers: Record<string, string>, body: unknown, timeoutMs: number, signal: AbortSignal, what: string): Promise<unknown> {
  const timeout = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.any([signal, timeout]),
    });
  } catch {
    throw new ModerationUnavailable(`${what} is unreachable or timed out`);
  }
  if (!res.ok) {
    await res.arrayBuffer().catch(() => undefined);
    throw new ModerationUnavailable(`${what} answered HTTP ${res.status}`);
  }
  try {
    return await res.json();
  } catch {
    throw new ModerationUnavailable(`${what} answered with invalid JSON`);
  }
}

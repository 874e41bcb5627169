/** Pluggable moderation: every provider answers the same question about the same input. */
export interface ModerationInput {
  /** Text of every message part (and tool-call arguments). */
  texts: string[];
  /** `image_url` parts: http(s) URLs or data: URLs. */
  imageUrls: string[];
}

export interface ModerationVerdict {
  flagged: boolean;
  /** Categories that caused the block (provider's names), for the structured refusal. */
  categories: string[];
}

/** The provider could not give a verdict (network, 5xx, bad answer): fail closed, the token stays retryable. */
export class ModerationUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModerationUnavailable';
  }
}

export interface Moderator {
  readonly name: string;
  moderate(input: ModerationInput, signal: AbortSignal): Promise<ModerationVerdict>;
}

import { excerpt, printable } from '../terminal-text.js';

/** A registrar or target answered with something other than the answer it promised: exit 1. */
export class BadAnswerError extends Error {
  override readonly name = 'BadAnswerError';
}

/** What came back, quoted in a one-line message: short, and with its escapes shown. */
export const quoted = (text: string) => printable(excerpt(text, 200)) || '(nothing)';

/**
 * The `message` text a register, deregister or heartbeat answers with. A 200 without one (a
 * proxy's page, another service at that URL) did not do what a script running `register … &&`
 * believes: it fails, naming the URL and what came back, rather than printing `undefined`.
 */
export function messageOf(answer: { json: unknown; text: string }, url: string): string {
  const message = (answer.json as { message?: unknown } | null)?.message;
  if (typeof message !== 'string') throw new BadAnswerError(`${url} answered without a "message" text: ${quoted(answer.text)}`);
  return printable(message);
}

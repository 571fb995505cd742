import type { RegistrarClient } from '../client/registrar-client.js';
import type { ClientFlags } from './shared.js';

export interface AskFlags extends ClientFlags {
  stream?: boolean;
  from: string;
}

/** A registrar or target answered with something other than the answer it promised. */
export class BadAnswerError extends Error {
  override readonly name = 'BadAnswerError';
}

/**
 * Prints a streamed answer as its words arrive, then a line break (with --json, each line as
 * it came). An abort through `signal` (Ctrl-C) ends it quietly.
 */
export async function streamAnswer(
  client: RegistrarClient,
  flags: AskFlags,
  service: string,
  message: string,
  signal: AbortSignal,
): Promise<void> {
  let wroteText = false;
  try {
    for await (const line of client.forwardStream(flags.from, service, message, signal)) {
      if (flags.json) {
        process.stdout.write(`${line.text}\n`);
        continue;
      }
      const value = line.value as { message?: unknown; error?: unknown };
      if (typeof value.error === 'string') {
        if (wroteText) process.stdout.write('\n');
        throw new BadAnswerError(`${service} failed in the middle of the answer: ${value.error}`);
      }
      if (typeof value.message === 'string') {
        process.stdout.write(value.message);
        wroteText = true;
      }
    }
  } catch (error) {
    if (signal.aborted) return;
    throw error;
  }
  if (!flags.json) process.stdout.write('\n');
}

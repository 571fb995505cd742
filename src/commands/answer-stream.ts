import type { ChatTurn, RegistrarClient } from '../client/registrar-client.js';
import { BadAnswerError, quoted } from './bad-answer.js';
import { type ClientFlags, hinted } from './shared.js';

export interface AskFlags extends ClientFlags {
  stream?: boolean;
  from: string;
}


/**
 * Prints a streamed answer as its words arrive, then a line break (with --json, each line as
 * it came), and returns its whole text. An abort through `signal` (Ctrl-C) ends it quietly, and
 * returns undefined: a cut answer is no part of a conversation. However it stops, words already
 * printed get their line break, so the shell prompt or the error starts on a line of its own.
 */
export async function streamAnswer(
  client: RegistrarClient,
  flags: AskFlags,
  service: string,
  message: string,
  signal: AbortSignal,
  history?: readonly ChatTurn[],
): Promise<string | undefined> {
  let text = '';
  // A target that answers 200 without any "message" (nor "done") gave no answer at all.
  let answered = false;
  let first: string | undefined;
  const { spinner } = await import('../output.js');
  const stopSpinner = spinner(`${service} is answering…`);
  try {
    for await (const line of client.forwardStream(flags.from, service, message, signal, history)) {
      stopSpinner();
      first ??= line.text;
      const value = (line.value ?? {}) as { message?: unknown; error?: unknown; done?: unknown };
      if (flags.json) process.stdout.write(`${line.text}\n`);
      // The line says who failed (the service, Ollama, the registrar shutting down): not always the service.
      if (typeof value.error === 'string') throw new BadAnswerError(`The answer from ${service} stopped: ${value.error}`);
      if (value.done === true) answered = true;
      if (typeof value.message === 'string') {
        answered = true;
        if (!flags.json) process.stdout.write(value.message);
        text += value.message;
      }
    }
  } catch (error) {
    if (text !== '' && !flags.json) process.stdout.write('\n');
    if (signal.aborted) return undefined;
    return hinted(client, service)(error);
  } finally {
    stopSpinner();
  }
  if (!answered && !flags.json) {
    throw new BadAnswerError(`${service} answered without a "message" text: ${quoted(first ?? '')}`);
  }
  if (!flags.json) process.stdout.write('\n');
  return text;
}

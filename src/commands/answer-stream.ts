import { anySignal } from '../any-signal.js';
import { answerPrinter, printable } from '../terminal-text.js';
import type { ChatTurn, RegistrarClient } from '../client/registrar-client.js';
import { BadAnswerError, quoted } from './bad-answer.js';
import { type ClientFlags, hinted } from './shared.js';

export interface AskFlags extends ClientFlags {
  stream?: boolean;
  from: string;
  /** `--timeout`: the longest silence from the registrar, in seconds. */
  timeout?: number;
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
  // An NDJSON answer came, and its closing `{"done": true}` line.
  let streamed = false;
  let closed = false;
  let first: string | undefined;
  const url = `${client.baseUrl}/forward`;
  const { spinner } = await import('../output.js');
  const { silenceLimit } = await import('../client/silence.js');
  const stopSpinner = spinner(`${service} is answering…`);
  const limit = silenceLimit(flags.timeout);
  // At a terminal the answer is shown, not obeyed (see printableAnswer).
  const terminal = process.stdout.isTTY ? answerPrinter() : undefined;
  try {
    for await (const line of client.forwardStream(flags.from, service, message, limit ? anySignal([signal, limit.signal]) : signal, history)) {
      limit?.heard();
      stopSpinner();
      first ??= line.text;
      if (line.streamed) {
        streamed = true;
        // `{"message": 5}` or `[1]` is not a piece of an answer: skipping it would leave a hole unseen.
        if (!isAnswerLine(line.value)) {
          throw new BadAnswerError(`${url} streamed a line that is not an answer line, so the answer stops here: ${quoted(line.text)}`);
        }
      }
      const value = (line.value ?? {}) as { message?: unknown; error?: unknown; done?: unknown };
      if (flags.json) process.stdout.write(`${line.text}\n`);
      // The line says who failed (the service, Ollama, the registrar shutting down): not always the service.
      // The service's words on one line: a line break in them could forge a line of advice under the error.
      if (typeof value.error === 'string') throw new BadAnswerError(`The answer from ${service} through ${url} stopped: ${printable(value.error)}`);
      if (value.done === true) {
        answered = true;
        closed = true;
      }
      if (typeof value.message === 'string') {
        answered = true;
        if (!flags.json) process.stdout.write(terminal ? terminal.piece(value.message) : value.message);
        text += value.message;
      }
    }
    // A stream that stops cleanly before its closing line (a target that died, a proxy that gave
    // up) looks like a short answer: it is an incomplete one, and the script must know.
    if (streamed && !closed && !signal.aborted) {
      throw new BadAnswerError(`${url} ended the answer without its closing {"done": true} line: what came is incomplete`);
    }
  } catch (error) {
    if (terminal) process.stdout.write(terminal.end());
    if (text !== '' && !flags.json) process.stdout.write('\n');
    if (limit?.fired) throw limit.error(url);
    if (signal.aborted) return undefined;
    return hinted(client, service)(error);
  } finally {
    stopSpinner();
    limit?.stop();
  }
  if (!answered && !flags.json) {
    throw new BadAnswerError(`${service} answered without a "message" text: ${quoted(first ?? '')}`);
  }
  if (!flags.json) process.stdout.write(`${terminal?.end() ?? ''}\n`);
  return text;
}

/** A line of a streamed answer: a piece of text, the closing `done`, or an error, each of its type. */
function isAnswerLine(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const line = value as { message?: unknown; error?: unknown; done?: unknown };
  if (line.message !== undefined && typeof line.message !== 'string') return false;
  if (line.error !== undefined && typeof line.error !== 'string') return false;
  return typeof line.message === 'string' || typeof line.error === 'string' || line.done === true;
}

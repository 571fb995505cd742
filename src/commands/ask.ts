import { Command, Option } from 'commander';
import { type ClientFlags, UsageError, clientFrom, withClientOptions } from './shared.js';

interface AskFlags extends ClientFlags {
  stream?: boolean;
  from: string;
}

/** A registrar or target answered with something other than the answer it promised. */
class BadAnswerError extends Error {
  override readonly name = 'BadAnswerError';
}

export function makeAskCommand(): Command {
  return withClientOptions(
    new Command('ask')
      .description('send a message to a service through the registrar and print its answer')
      .argument('<service>', 'service to ask, e.g. ollama_service')
      .argument('[message...]', 'the message; several words are joined with spaces; none, or "-", reads it from standard input')
      .option('--stream', 'print the answer as it is produced')
      .addOption(new Option('--from <name>', 'sender name passed to the service').default('svcmesh-cli')),
  ).action(async (service: string, words: string[], flags: AskFlags) => {
    const message = await messageFrom(words);
    const client = await clientFrom(flags);
    const controller = new AbortController();
    // Ctrl-C while an answer streams: stop it upstream too, then leave quietly.
    process.once('SIGINT', () => {
      controller.abort();
      process.exitCode = 130;
    });
    if (flags.stream) return streamAnswer(client, flags, service, message, controller.signal);
    const answer = await client.forward(flags.from, service, message, controller.signal);
    if (flags.json) return void process.stdout.write(`${answer.text.trim()}\n`);
    if (typeof answer.json.message !== 'string') {
      throw new BadAnswerError(`${service} answered without a "message" text: ${answer.text.slice(0, 200)}`);
    }
    process.stdout.write(`${answer.json.message}\n`);
  });
}

/** The registrar refuses a body over 1 MiB; a longer message is refused here before it is sent. */
const MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * The words given, or standard input when there are none (or just "-"), as with `ollama run`:
 * `cat notes.txt | svcmesh ask ollama_service`. Standard input is read only then, so a script
 * that leaves it open while passing the message as words never hangs.
 */
async function messageFrom(words: string[]): Promise<string> {
  const fromStdin = words.length === 0 || (words.length === 1 && words[0] === '-');
  if (!fromStdin) return words.join(' ');
  if (process.stdin.isTTY) {
    throw new UsageError('missing message: give it after the service name (svcmesh ask ollama_service "What is AI?"), or pipe it in');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > MAX_MESSAGE_BYTES) {
      process.stdin.destroy();
      throw new UsageError('the message on standard input is over 1 MiB, more than a registrar takes: send a shorter one');
    }
    chunks.push(chunk);
  }
  // `echo "What is AI?" | svcmesh ask …` ends with a line break that is not part of the question.
  const message = Buffer.concat(chunks).toString('utf8').replace(/(\r?\n)+$/, '');
  if (message.trim() === '') throw new UsageError('standard input held no message: pipe the question in, or give it after the service name');
  return message;
}

async function streamAnswer(
  client: Awaited<ReturnType<typeof clientFrom>>,
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

import { Command, Option } from 'commander';
import { type ClientFlags, clientFrom, withClientOptions } from './shared.js';

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
      .argument('<message...>', 'the message; several words are joined with spaces')
      .option('--stream', 'print the answer as it is produced')
      .addOption(new Option('--from <name>', 'sender name passed to the service').default('svcmesh-cli')),
  ).action(async (service: string, words: string[], flags: AskFlags) => {
    const client = await clientFrom(flags);
    const message = words.join(' ');
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

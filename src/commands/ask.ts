import { fstatSync } from 'node:fs';
import { anySignal } from '../any-signal.js';
import { printableAnswer } from '../terminal-text.js';
import { Command, Option } from 'commander';
import { type AskFlags, streamAnswer } from './answer-stream.js';
import { BadAnswerError, quoted } from './bad-answer.js';
import { abortWhenReaderGoes } from '../stdout-reader.js';
import { UsageError, clientFrom, hinted, parseSeconds, parseServiceName, withClientOptions } from './shared.js';

export function makeAskCommand(): Command {
  return withClientOptions(
    new Command('ask')
      .description('send a message to a service through the registrar and print its answer')
      .argument('<service>', 'service to ask, e.g. ollama_service', parseServiceName)
      .argument('[message...]', 'the message; several words are joined with spaces; none, or "-", reads it from standard input (at a terminal: asks one message after another)')
      .option('--stream', 'print the answer as it is produced')
      .addOption(new Option('--from <name>', 'sender name passed to the service').default('svcmesh-cli'))
      .addOption(
        new Option('--timeout <seconds>', 'give up when the registrar sends nothing for this long (default: wait as long as the answer takes)').argParser(
          parseSeconds,
        ),
      )
      // An unknown option is most likely a word of the message: say how to send it. Any other
      // usage error gets the usual line.
      .showHelpAfterError(false)
      .configureOutput({
        outputError: (text, write) =>
          write(
            `${text}${/unknown option/.test(text) ? '(words of the message that start with "-" go after --: svcmesh ask ollama_service -- what does -v mean)' : '(run `svcmesh ask --help` for usage)'}\n`,
          ),
      }),
    { timeout: false },
  ).action(async (service: string, words: string[], flags: AskFlags) => {
    if (words.length === 0 && process.stdin.isTTY) {
      const client = await clientFrom(flags);
      // As `ollama run` checks its model: a name the registrar does not know (or a registrar that
      // is not there) is said before a prompt invites questions that would all fail. --timeout
      // bounds this wait too: a hung registrar must not hang the start.
      const { silenceLimit } = await import('../client/silence.js');
      const limit = silenceLimit(flags.timeout);
      await client
        .service(service, limit?.signal)
        .finally(() => limit?.stop())
        .catch((error: unknown) => {
          if (limit?.fired) throw limit.error(`${client.baseUrl}/services/${service}`);
          return hinted(client, service)(error);
        });
      // Reads may be open where forwards need a token: every question would then be refused.
      const health = (await client.health().catch(() => undefined))?.json;
      if (health?.token_required === true && !client.authHeaders.authorization) {
        throw new Error(
          `The registrar at ${client.baseUrl} needs a token to forward questions: pass it with --token or SVCMESH_TOKEN, or keep it with \`svcmesh config set token <token>\``,
        );
      }
      if (health?.token_required === true && health.token_accepted === false) {
        throw new Error(`The registrar at ${client.baseUrl} does not accept the token given: check --token, SVCMESH_TOKEN or \`svcmesh config get token\``);
      }
      const { askInteractively } = await import('./ask-session.js');
      return askInteractively(client, flags, service);
    }
    const message = await messageFrom(words);
    assertFits({ from: flags.from, to: service, message, ...(flags.stream && { stream: true }) }, readsStdin(words));
    const client = await clientFrom(flags);
    const controller = new AbortController();
    // `ask --stream … | head -c 5`: the reader has what it wanted, so the answer stops.
    abortWhenReaderGoes(controller);
    // Ctrl-C while an answer streams: stop it upstream too, then leave quietly.
    process.once('SIGINT', () => {
      controller.abort();
      process.exitCode = 130;
    });
    if (flags.stream) {
      await streamAnswer(client, flags, service, message, controller.signal);
      return;
    }
    const { spinner } = await import('../output.js');
    const { silenceLimit } = await import('../client/silence.js');
    const stopSpinner = spinner(`${service} is answering…`);
    const limit = silenceLimit(flags.timeout);
    const answer = await client
      .forward(flags.from, service, message, limit ? anySignal([controller.signal, limit.signal]) : controller.signal)
      .finally(() => {
        stopSpinner();
        limit?.stop();
      })
      .catch((error: unknown) => {
        if (limit?.fired) throw limit.error(`${client.baseUrl}/forward`);
        // Ctrl-C: the request was aborted on purpose, there is nothing to report (exit 130).
        if (controller.signal.aborted) return undefined;
        // The registrar's advice is for HTTP callers; at the command line it is a flag.
        if ((error as Error).message?.includes('send "stream": true')) {
          Object.assign(error as Error, { hint: 'Ask again with --stream to get a long answer as it is produced.' });
        }
        return hinted(client, service)(error);
      });
    if (answer === undefined) return;
    if (flags.json) return void process.stdout.write(`${answer.text.trim()}\n`);
    // JSON `null` is an answer without a message too, not a TypeError.
    const said = answer.json?.message;
    if (typeof said !== 'string') {
      throw new BadAnswerError(`${service} answered without a "message" text: ${quoted(answer.text)}`);
    }
    process.stdout.write(`${process.stdout.isTTY ? printableAnswer(said) : said}\n`);
  });
}

/** The registrar refuses a body over 1 MiB; a longer message is refused here before it is sent. */
const MAX_MESSAGE_BYTES = 1024 * 1024;

const TOO_LONG = 'over 1 MiB as sent (JSON-escaped), more than a registrar takes: send a shorter one';

/**
 * Refuses a message whose request body would be over the registrar's limit, measured as the body
 * is sent: JSON escapes a quote or a control character into two or six bytes, so a message of
 * 1,000,000 `"` is a body of 2 MB.
 */
function assertFits(body: Record<string, unknown>, fromStdin: boolean): void {
  if (Buffer.byteLength(JSON.stringify(body)) <= MAX_MESSAGE_BYTES) return;
  throw new UsageError(`the message ${fromStdin ? 'on standard input ' : ''}is ${TOO_LONG}`);
}

const readsStdin = (words: string[]) => words.length === 0 || (words.length === 1 && words[0] === '-') || placesStdin(words);

/**
 * `cat notes.txt | svcmesh ask ollama_service "summarize this:" -`: a "-" among the words stands
 * for what is piped in. Only from a pipe, a file or a socket (what a program that spawns svcmesh
 * writes to): at a terminal, or with nothing attached (/dev/null, as under cron),
 * `what is 5 - 3` is a question with a minus in it.
 */
function placesStdin(words: string[]): boolean {
  if (words.length < 2 || !words.includes('-')) return false;
  try {
    const stdin = fstatSync(0);
    return stdin.isFIFO() || stdin.isFile() || stdin.isSocket();
  } catch {
    return false;
  }
}

/**
 * The words given, or standard input when there are none (or just "-"), as with `ollama run`:
 * `cat notes.txt | svcmesh ask ollama_service`. With words, standard input is read only where a
 * "-" among them asks for it (see placesStdin), so a script that leaves it open while passing the
 * message as words never hangs, and a `while read` loop keeps its lines.
 */
async function messageFrom(words: string[]): Promise<string> {
  if (!readsStdin(words)) {
    const message = words.join(' ');
    if (message.trim() === '') throw new UsageError('the message is empty: give the question after the service name, or pipe it in');
    return message;
  }
  if (process.stdin.isTTY) {
    throw new UsageError('"-" reads the message from standard input, but that is a terminal: pipe the message in, or give it after the service name');
  }
  // Node reads a directory on standard input (`< /tmp`) as an empty stream: the cause would be lost.
  const unreadable = whyUnreadable();
  if (unreadable) throw new UsageError(`cannot read standard input: ${unreadable}: pipe the question in, or give it after the service name`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > MAX_MESSAGE_BYTES) {
      process.stdin.destroy();
      throw new UsageError(`the message on standard input is ${TOO_LONG}`);
    }
    chunks.push(chunk);
  }
  // `echo "What is AI?" | svcmesh ask …` ends with a line break that is not part of the question.
  const piped = Buffer.concat(chunks).toString('utf8').replace(/(\r?\n)+$/, '');
  if (placesStdin(words)) {
    if (piped.trim() === '') throw new UsageError('"-" among the words stands for standard input, which held nothing: pipe the text in, or leave the "-" out');
    return words.map((word) => (word === '-' ? piped : word)).join(' ');
  }
  if (piped.trim() === '') throw new UsageError('standard input held no message: pipe the question in, or give it after the service name');
  return piped;
}

/** Why standard input cannot be read as a message (a directory, a closed descriptor), if it cannot. */
function whyUnreadable(): string | undefined {
  try {
    return fstatSync(0).isDirectory() ? 'EISDIR: it is a directory' : undefined;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return e.code ?? e.message;
  }
}

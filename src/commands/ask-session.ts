import { createInterface } from 'node:readline';
import type { ChatTurn, RegistrarClient } from '../client/registrar-client.js';
import { hintFor } from '../error-hint.js';
import { type AskFlags, streamAnswer } from './answer-stream.js';

/**
 * The conversation sent with each message stays under this, well inside the registrar's 1 MiB
 * body limit: past it, the oldest exchanges are dropped first.
 */
const MAX_HISTORY_BYTES = 512 * 1024;
const PROMPT = '>>> ';
const HELP = [
  'Commands:',
  '  /clear          forget the conversation so far',
  '  /bye, /exit     leave (Ctrl-D too)',
  '  /?, /help       this help',
  '  """ ... """     a message of several lines',
  'Ctrl-C stops the answer under way, or drops what is typed at the prompt.',
].join('\n');
const CONTINUED = '... ';

/**
 * `svcmesh ask ollama_service` at a terminal, as `ollama run llama3.2` does: a `>>>` prompt, each
 * answer printed as it is produced, the conversation so far sent along (`history`) so the service
 * answers in context. Ctrl-C stops the answer under way; /clear forgets; Ctrl-D or /bye leaves.
 */
export async function askInteractively(client: RegistrarClient, flags: AskFlags, service: string): Promise<void> {
  const output = await import('../output.js');
  output.info(`Asking ${service} through ${client.baseUrl}. """ starts and ends a message of several lines; /clear forgets the conversation; Ctrl-D or /bye leaves; /? lists the commands.`);
  // `svcmesh ask svc > answers.txt`: the prompt and what is typed show on the terminal, and only
  // the answers go to the file.
  const screen = process.stdout.isTTY ? process.stdout : process.stderr;
  const prompt = createInterface({ input: process.stdin, output: screen, prompt: PROMPT });
  let history: ChatTurn[] = [];
  let answering: AbortController | undefined;
  // Lines of a message begun with """ (as in `ollama run`), until a line that ends with """.
  let block: string[] | undefined;
  // Left by /bye or /exit (their Enter ended the line), rather than by Ctrl-D.
  let left = false;
  prompt.on('SIGINT', () => {
    if (answering) {
      answering.abort();
      return;
    }
    // At the prompt, Ctrl-C drops what was being typed, a message of several lines included:
    // Enter afterwards must not send it (as in `ollama run`). Ctrl-E then Ctrl-U empty the line.
    block = undefined;
    prompt.write(null, { ctrl: true, name: 'e' });
    prompt.write(null, { ctrl: true, name: 'u' });
    prompt.setPrompt(PROMPT);
    screen.write('\nUse Ctrl-D or /bye to leave.\n');
    prompt.prompt();
  });
  // Ctrl-D while an answer comes closes readline under the loop: once the answer is over, the
  // session ends rather than draw a prompt that can no longer read anything.
  let inputClosed = false;
  prompt.once('close', () => (inputClosed = true));
  prompt.prompt();
  for await (const line of prompt) {
    if (block === undefined && line.trimStart().startsWith('"""')) block = [];
    if (block !== undefined) {
      const text = block.length === 0 ? line.trimStart().slice(3) : line;
      const closed = text.trimEnd().endsWith('"""');
      block.push(closed ? text.trimEnd().slice(0, -3) : text);
      if (!closed) {
        prompt.setPrompt(CONTINUED);
        prompt.prompt();
        continue;
      }
      prompt.setPrompt(PROMPT);
    }
    const several = block !== undefined;
    // A block loses the blank lines around it, not the indentation of its first line (code, YAML).
    const message = several ? block!.join('\n').replace(/^(?:[ \t]*\n)+/, '').trimEnd() : line.trim();
    block = undefined;
    // Commands are one word after "/" on a line of their own: a message of several lines, or a
    // line of several words ("/usr/lib holds what?"), is only ever a message.
    const command = !several && /^\/\S*$/.test(message) ? message : undefined;
    if (command === '/bye' || command === '/exit') {
      left = true;
      break;
    }
    if (command === '/clear') {
      history = [];
      output.info('Conversation forgotten.');
    } else if (command === '/?' || command === '/help') {
      output.info(HELP);
    } else if (command !== undefined) {
      // A mistyped command sent as a question would be answered, and kept in the conversation.
      output.error(`Unknown command ${command}: type /? for the commands`);
    } else if (message !== '') {
      answering = new AbortController();
      try {
        const answer = await streamAnswer(client, flags, service, message, answering.signal, history);
        // An answer cut short (Ctrl-C) is left out, with its question, as `ollama run` does.
        if (answer !== undefined) history = keepWithin([...history, { role: 'user', content: message }, { role: 'assistant', content: answer }]);
      } catch (error) {
        // One failed question (the service gone, a timeout) does not end the session.
        // With the same advice under it as a one-off ask gets (a registrar away, a token wanted).
        output.error(`${(error as Error).message}${hintFor(error as Error)}`);
      } finally {
        answering = undefined;
      }
    }
    if (inputClosed) break;
    prompt.prompt();
  }
  prompt.close();
  // Ctrl-D leaves the cursor after the prompt: the shell's own prompt starts on a line of its own.
  if (!left) screen.write('\n');
}

/** Drops the oldest exchanges (a question and its answer) until the rest fits the limit. */
function keepWithin(history: ChatTurn[]): ChatTurn[] {
  // Each turn's size once (its JSON and a comma), rather than the whole list again per drop.
  const sizes = history.map((turn) => Buffer.byteLength(JSON.stringify(turn)) + 1);
  let total = sizes.reduce((sum, size) => sum + size, 2);
  let first = 0;
  while (first < history.length && total > MAX_HISTORY_BYTES) {
    total -= (sizes[first] ?? 0) + (sizes[first + 1] ?? 0);
    first += 2;
  }
  return first === 0 ? history : history.slice(first);
}

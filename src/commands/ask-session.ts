import { createInterface } from 'node:readline';
import type { RegistrarClient } from '../client/registrar-client.js';
import { type AskFlags, streamAnswer } from './answer-stream.js';

/**
 * `svcmesh ask ollama_service` at a terminal, as `ollama run llama3.2` does: a `>>>` prompt, each
 * message answered as it is produced. A forwarded message carries no history, so each answer
 * stands alone, and the banner says so. Ctrl-C stops the answer under way; Ctrl-D or /bye leaves.
 */
export async function askInteractively(client: RegistrarClient, flags: AskFlags, service: string): Promise<void> {
  const output = await import('../output.js');
  output.info(`Asking ${service} through ${client.baseUrl}. Each message is answered on its own, without the ones before. Ctrl-D or /bye leaves.`);
  const prompt = createInterface({ input: process.stdin, output: process.stdout, prompt: '>>> ' });
  let answering: AbortController | undefined;
  prompt.on('SIGINT', () => {
    if (answering) {
      answering.abort();
      return;
    }
    process.stdout.write('\nUse Ctrl-D or /bye to leave.\n');
    prompt.prompt();
  });
  prompt.prompt();
  for await (const line of prompt) {
    const message = line.trim();
    if (message === '/bye') break;
    if (message !== '') {
      answering = new AbortController();
      try {
        await streamAnswer(client, flags, service, message, answering.signal);
        if (answering.signal.aborted) process.stdout.write('\n');
      } catch (error) {
        // One failed question (the service gone, a timeout) does not end the session.
        output.error((error as Error).message);
      } finally {
        answering = undefined;
      }
    }
    prompt.prompt();
  }
  prompt.close();
}

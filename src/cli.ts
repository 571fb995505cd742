import { Command, CommanderError } from 'commander';
import { makeAskCommand } from './commands/ask.js';
import { makeConfigCommand } from './commands/config.js';
import { makeHeartbeatCommand } from './commands/heartbeat.js';
import { makeOllamaCommand } from './commands/ollama.js';
import { makeDeregisterCommand, makeRegisterCommand } from './commands/register.js';
import { makeRegistrarCommand } from './commands/registrar.js';
import { makeServicesCommand } from './commands/services.js';
import { VERSION } from './version.js';

const USAGE_ERRORS = new Set(['UsageError', 'StoreSpecError', 'ConfigError', 'HostPolicyError']);

function buildProgram(): Command {
  const program = new Command('svcmesh')
    .description('Service discovery and service-to-service messaging, with Ollama as a first-class service')
    .version(VERSION, '-v, --version', 'print the version')
    .showHelpAfterError('(run with --help for usage)');
  for (const make of [
    makeRegistrarCommand,
    makeOllamaCommand,
    makeServicesCommand,
    makeHeartbeatCommand,
    makeRegisterCommand,
    makeDeregisterCommand,
    makeAskCommand,
    makeConfigCommand,
  ]) {
    program.addCommand(make());
  }
  // Usage errors must exit 2 (commander's default is 1), so every command reports instead of exiting.
  const override = (command: Command) => {
    command.exitOverride();
    command.commands.forEach(override);
  };
  override(program);
  return program;
}

function hintFor(error: Error & { status?: number; url?: string }): string {
  if (error.name === 'HttpError' && error.status === undefined) {
    return '\n  Is the registrar running there? Start it with `svcmesh registrar`, or point --registrar / SVCMESH_REGISTRAR at it.';
  }
  if (error.name === 'HttpError' && error.status === 401) {
    return '\n  Pass the registrar\'s token with --token, SVCMESH_TOKEN or `svcmesh config set token <token>`.';
  }
  return '';
}

/** The only place that turns errors into a message on stderr and an exit code. */
async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    const e = error as Error;
    const { error: printError } = await import('./output.js');
    printError(`${e.message}${hintFor(e)}`);
    process.exitCode = USAGE_ERRORS.has(e.name) ? 2 : 1;
  }
}

await main(process.argv);

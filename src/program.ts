import { Command } from 'commander';
import { makeAskCommand } from './commands/ask.js';
import { makeCompletionCommand, makeServiceNamesCommand } from './commands/completion.js';
import { makeConfigCommand } from './commands/config.js';
import { makeHeartbeatCommand } from './commands/heartbeat.js';
import { makeOllamaCommand } from './commands/ollama.js';
import { makeDeregisterCommand, makeRegisterCommand } from './commands/register.js';
import { makeRegistrarCommand } from './commands/registrar.js';
import { makeServicesCommand } from './commands/services.js';
import { makeStatusCommand } from './commands/status.js';
import { VERSION } from './version.js';

/** The whole command tree. Every command reports usage errors instead of exiting by itself. */
export function buildProgram(): Command {
  const program = new Command('svcmesh')
    .description('Service discovery and service-to-service messaging, with Ollama as a first-class service')
    .version(VERSION, '-v, --version', 'print the version')
    // Root options only before the command: `svcmesh ask svc what does -v mean` must not print the
    // version (commander otherwise reads root options anywhere on the line).
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)');
  for (const make of [
    makeRegistrarCommand,
    makeOllamaCommand,
    makeServicesCommand,
    makeStatusCommand,
    makeHeartbeatCommand,
    makeRegisterCommand,
    makeDeregisterCommand,
    makeAskCommand,
    makeConfigCommand,
    makeCompletionCommand,
  ]) {
    program.addCommand(make());
  }
  program.addCommand(makeServiceNamesCommand(), { hidden: true });
  // Usage errors must exit 2 (commander's default is 1), so every command reports instead of exiting.
  const override = (command: Command) => {
    command.exitOverride();
    command.commands.forEach(override);
  };
  override(program);
  return program;
}

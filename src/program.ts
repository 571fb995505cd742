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
import { makeVersionCommand } from './commands/version.js';
import { VERSION } from './version.js';

/** The whole command tree. Every command reports usage errors instead of exiting by itself. */
export function buildProgram(): Command {
  const program = new Command('svcmesh')
    .description('Service discovery and service-to-service messaging, with Ollama as a first-class service')
    .version(VERSION, '-v, --version', 'print the version')
    // Root options only before the command: `svcmesh ask svc what does -v mean` must not print the
    // version (commander otherwise reads root options anywhere on the line).
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    // `svcmesh --registrar :5001 services`, as etcdctl and consul take flags: say where they go.
    .configureOutput({
      outputError: (text, write) => {
        const option = /^error: unknown option '(-[^'=]+)/.exec(text)?.[1];
        const takes = (command: Command) => command.options.some((known) => known.long === option || known.short === option);
        // The command named on the line, when it takes the option; else the first that does.
        const named = program.commands.find((command) => process.argv.includes(command.name()));
        const taker = option && (named && takes(named) ? named : program.commands.find(takes));
        write(taker ? `${text}(options go after the command: svcmesh ${taker.name()} ${option} …)\n` : text);
      },
    });
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
    makeVersionCommand,
  ]) {
    program.addCommand(make());
  }
  program.addCommand(makeServiceNamesCommand(), { hidden: true });
  // Usage errors must exit 2 (commander's default is 1), so every command reports instead of exiting.
  const override = (command: Command) => {
    command.exitOverride();
    // Every command's usage error says where the usage is (ask says more of its own).
    if (command !== program && command.name() !== 'ask') command.showHelpAfterError(`(run \`${commandPath(command)} --help\` for usage)`);
    command.commands.forEach(override);
  };
  override(program);
  return program;
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

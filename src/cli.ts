import { hintFor } from './error-hint.js';
import { watchStdoutReader } from './stdout-reader.js';
import { VERSION } from './version.js';

const USAGE_ERRORS = new Set(['UsageError', 'StoreSpecError', 'ConfigError', 'HostPolicyError', 'TargetTokenError']);

/** The only place that turns errors into a message on stderr and an exit code. */
async function main(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  watchStdoutReader();
  // Scripts call --version to probe for the tool: answer it without building the command tree.
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const [{ buildProgram }, { CommanderError }] = await Promise.all([import('./program.js'), import('commander')]);
  // commander's `help` reads one command name: `help config list` would show config's help.
  // `help A B` is `A B --help`, which finds the subcommand at any depth.
  let parsed = args[0] === 'help' && args.length > 2 ? [...argv.slice(0, 2), ...args.slice(1), '--help'] : argv;
  const program = buildProgram();
  // `help nosuch` would show the main help, as if it had been found: run it as the command it
  // names instead, which is an unknown command (exit 2, with "Did you mean").
  if (args[0] === 'help' && args[1] !== undefined && !program.commands.some((command) => command.name() === args[1])) {
    parsed = [...argv.slice(0, 2), args[1]];
  }
  try {
    await program.parseAsync(parsed);
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

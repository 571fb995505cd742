import { VERSION } from './version.js';

const USAGE_ERRORS = new Set(['UsageError', 'StoreSpecError', 'ConfigError', 'HostPolicyError', 'TargetTokenError']);

function hintFor(error: Error & { status?: number; hint?: string }): string {
  if (error.hint) return `\n  ${error.hint}`;
  if (error.name === 'HttpError' && error.status === undefined) {
    return '\n  Is the registrar running there? Start it with `svcmesh registrar`, or point --registrar / SVCMESH_REGISTRAR at it.';
  }
  if (error.name === 'HttpError' && error.status === 401) {
    return "\n  Pass the registrar's token with --token, SVCMESH_TOKEN or `svcmesh config set token <token>`.";
  }
  return '';
}

/** The only place that turns errors into a message on stderr and an exit code. */
async function main(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  // Scripts call --version to probe for the tool: answer it without building the command tree.
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const [{ buildProgram }, { CommanderError }] = await Promise.all([import('./program.js'), import('commander')]);
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

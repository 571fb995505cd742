import { Argument, Command } from 'commander';
import { type ClientFlags, clientFrom, withClientOptions } from './shared.js';

/** Commands whose first argument is a registered service's name. */
const TAKES_SERVICE = ['ask', 'heartbeat', 'services', 'deregister'];

/**
 * `source <(svcmesh completion bash)`, as with `etcdctl completion bash` or `kubectl completion`.
 * Commands and options come from the command tree, so the script never lags behind the program;
 * service names come from the registrar at the moment Tab is pressed.
 */
export function makeCompletionCommand(): Command {
  return new Command('completion')
    .description('print a shell completion script: source <(svcmesh completion bash), or add that line to ~/.bashrc')
    .addArgument(new Argument('<shell>', 'the shell to complete in').choices(['bash']))
    .action((_shell: 'bash', _flags: unknown, command: Command) => {
      process.stdout.write(bashScript(command.parent!));
    });
}

/** What the script calls for names on Tab: one per line, nothing (and quickly) when unreachable. */
export function makeServiceNamesCommand(): Command {
  return withClientOptions(new Command('__service-names').description('service names, one per line, for shell completion')).action(
    async (flags: ClientFlags) => {
      try {
        const client = await clientFrom(flags, { timeoutMs: 1_500 });
        const names = Object.keys((await client.services()).json.services ?? {});
        if (names.length > 0) process.stdout.write(`${names.join('\n')}\n`);
      } catch {
        // A completion has no place to report a registrar that is away: it offers nothing.
      }
    },
  );
}

function bashScript(root: Command): string {
  const visible = root.commands.filter((c) => !c.name().startsWith('__'));
  const perCommand = (render: (c: Command) => string) =>
    visible
      .map((c) => [c.name(), render(c)])
      .filter(([, body]) => body !== '')
      .map(([name, body]) => `    ${name}) ${body} ;;`)
      .join('\n');
  // Options followed by a value (a URL, a token, a number): the word after one is not a name.
  const valued = perCommand((c) => {
    const longs = c.options.filter((o) => o.required || o.optional).map((o) => o.long);
    return longs.length ? `valued=" ${longs.join(' ')} "` : '';
  });
  const options = perCommand((c) => `opts="${[...c.options.map((o) => o.long), '--help'].join(' ')}"`);
  const choices = visible
    .flatMap((c) => c.options.filter((o) => o.argChoices).map((o) => `    ${c.name()}:${o.long}) COMPREPLY=($(compgen -W "${o.argChoices!.join(' ')}" -- "$cur")) ;;`))
    .join('\n');
  const config = root.commands.find((c) => c.name() === 'config');
  const configSubcommands = config?.commands.map((c) => c.name()) ?? [];
  return `# svcmesh completion for bash: source <(svcmesh completion bash)
_svcmesh() {
  # Words split at spaces only: COMP_WORDS would cut --registrar http://host:port at each colon.
  local line="\${COMP_LINE:0:COMP_POINT}" words=()
  read -ra words <<< "$line"
  [[ "$line" == *" " ]] && words+=("")
  local cword=$((\${#words[@]} - 1))
  local cur="\${words[cword]}" prev="\${words[cword-1]}"
  COMPREPLY=()
  if [ "$cword" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${visible.map((c) => c.name()).join(' ')} help --help --version" -- "$cur"))
    return 0
  fi
  local cmd="\${words[1]}" opts="" valued=" "
  case "$cmd" in
${options}
  esac
  case "$cmd" in
${valued}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return 0
  fi
  if [[ "$valued" == *" $prev "* ]]; then
    case "$cmd:$prev" in
${choices}
    esac
    return 0
  fi
  # The words after the command that are neither options nor their values.
  local i word positional=0 registrar=()
  for ((i = 2; i < cword; i++)); do
    word="\${words[i]}"
    if [ "$word" = "--registrar" ]; then registrar=(--registrar "\${words[i+1]}"); fi
    if [[ "$valued" == *" $word "* ]]; then i=$((i + 1)); continue; fi
    [[ "$word" == -* ]] || positional=$((positional + 1))
  done
  case "$cmd" in
    ${TAKES_SERVICE.join('|')})
      if [ "$positional" -eq 0 ]; then
        local IFS=$'\\n'
        COMPREPLY=($(compgen -W "$(svcmesh __service-names "\${registrar[@]}" 2>/dev/null)" -- "$cur"))
      fi ;;
    config)
      if [ "$positional" -eq 0 ]; then
        COMPREPLY=($(compgen -W "${configSubcommands.join(' ')}" -- "$cur"))
      elif [ "$positional" -eq 1 ]; then
        case "\${words[2]}" in get|set|unset) COMPREPLY=($(compgen -W "registrar token" -- "$cur")) ;; esac
      fi ;;
    completion)
      [ "$positional" -eq 0 ] && COMPREPLY=($(compgen -W "bash" -- "$cur")) ;;
  esac
  return 0
}
complete -F _svcmesh svcmesh
`;
}

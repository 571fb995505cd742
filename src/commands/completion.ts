import { Argument, Command } from 'commander';
import { type ClientFlags, clientFrom, withClientOptions } from './shared.js';

/** Commands whose first argument is a registered service's name. */
const TAKES_SERVICE = ['ask', 'heartbeat', 'services', 'deregister'];

const SHELLS = ['bash', 'zsh'] as const;

/**
 * `source <(svcmesh completion bash)` (or `zsh`), as with `etcdctl completion bash` or `kubectl
 * completion`. Commands and options come from the command tree, so the script never lags behind
 * the program; service names come from the registrar at the moment Tab is pressed.
 */
export function makeCompletionCommand(): Command {
  return new Command('completion')
    .description('print a shell completion script: source <(svcmesh completion bash) in ~/.bashrc, or source <(svcmesh completion zsh) after compinit in ~/.zshrc')
    .addArgument(new Argument('<shell>', 'the shell to complete in').choices(SHELLS))
    .action((shell: (typeof SHELLS)[number], _flags: unknown, command: Command) => {
      process.stdout.write(shell === 'zsh' ? zshScript(command.parent!) : bashScript(command.parent!));
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

/** What both scripts know of the command tree, as shell `case` branches and word lists. */
function treeForShell(root: Command, offer: (words: string) => string) {
  const visible = root.commands.filter((c) => !c.name().startsWith('__'));
  const perCommand = (render: (c: Command) => string) =>
    visible
      .map((c) => [c.name(), render(c)])
      .filter(([, body]) => body !== '')
      .map(([name, body]) => `    ${name}) ${body} ;;`)
      .join('\n');
  const config = root.commands.find((c) => c.name() === 'config');
  const options = perCommand((c) => `opts="${[...c.options.map((o) => o.long), '--help'].join(' ')}"`);
  // Options followed by a value (a URL, a token, a number): the word after one is not a name.
  const valued = perCommand((c) => {
    const longs = c.options.filter((o) => o.required || o.optional).map((o) => o.long);
    return longs.length ? `valued=" ${longs.join(' ')} "` : '';
  });
  return {
    commands: visible.map((c) => c.name()).join(' '),
    /** Sets $opts and $valued (both shells' syntax) for the command in $cmd. */
    optionCases: `  case "$cmd" in\n${options}\n  esac\n  case "$cmd" in\n${valued}\n  esac`,
    choices: visible
      .flatMap((c) => c.options.filter((o) => o.argChoices).map((o) => `    ${c.name()}:${o.long}) ${offer(o.argChoices!.join(' '))} ;;`))
      .join('\n'),
    configSubcommands: (config?.commands.map((c) => c.name()) ?? []).join(' '),
  };
}

function bashScript(root: Command): string {
  const { commands, optionCases, choices, configSubcommands } = treeForShell(root, (words) => `COMPREPLY=($(compgen -W "${words}" -- "$cur"))`);
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
    COMPREPLY=($(compgen -W "${commands} help --help --version" -- "$cur"))
    return 0
  fi
  local cmd="\${words[1]}" opts="" valued=" "
${optionCases}
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
        COMPREPLY=($(compgen -W "${configSubcommands}" -- "$cur"))
      elif [ "$positional" -eq 1 ]; then
        case "\${words[2]}" in get|set|unset) COMPREPLY=($(compgen -W "registrar token" -- "$cur")) ;; esac
      fi ;;
    completion)
      [ "$positional" -eq 0 ] && COMPREPLY=($(compgen -W "${SHELLS.join(' ')}" -- "$cur")) ;;
  esac
  return 0
}
complete -F _svcmesh svcmesh
`;
}

/**
 * The same rules for zsh's completion system: `_svcmesh_candidates` works out what fits the line
 * (as the bash script does, with zsh's arrays, which count from 1), and compadd offers those that
 * start with what is typed.
 */
function zshScript(root: Command): string {
  const { commands, optionCases, choices, configSubcommands } = treeForShell(root, (words) => `candidates=(${words})`);
  return `#compdef svcmesh
# svcmesh completion for zsh: source <(svcmesh completion zsh) after compinit in ~/.zshrc,
# or save it as _svcmesh in a directory of $fpath.
_svcmesh() {
  local -a candidates
  _svcmesh_candidates "\${(@)words[1,CURRENT]}"
  compadd -a candidates
}

# $@: the words of the line up to the one under the cursor, which comes last (maybe empty).
# Sets candidates.
_svcmesh_candidates() {
  local -a w=("$@")
  local cword=$#w cur="\${w[-1]}" prev="\${w[-2]}"
  candidates=()
  if (( cword == 2 )); then
    candidates=(${commands} help --help --version)
    return 0
  fi
  local cmd="\${w[2]}" opts="" valued=" "
${optionCases}
  if [[ "$cur" == -* ]]; then
    candidates=(\${=opts})
    return 0
  fi
  if [[ "$valued" == *" $prev "* ]]; then
    case "$cmd:$prev" in
${choices}
    esac
    return 0
  fi
  # The words after the command that are neither options nor their values.
  local i word positional=0
  local -a registrar
  for ((i = 3; i < cword; i++)); do
    word="\${w[i]}"
    [[ "$word" == --registrar ]] && registrar=(--registrar "\${w[i+1]}")
    if [[ "$valued" == *" $word "* ]]; then (( i++ )); continue; fi
    [[ "$word" == -* ]] || (( positional++ ))
  done
  case "$cmd" in
    ${TAKES_SERVICE.join('|')})
      (( positional == 0 )) && candidates=(\${(f)"$(svcmesh __service-names "\${registrar[@]}" 2>/dev/null)"}) ;;
    config)
      if (( positional == 0 )); then
        candidates=(${configSubcommands})
      elif (( positional == 1 )); then
        case "\${w[3]}" in get|set|unset) candidates=(registrar token) ;; esac
      fi ;;
    completion)
      (( positional == 0 )) && candidates=(${SHELLS.join(' ')}) ;;
  esac
  return 0
}

# Autoloaded from $fpath, this file is _svcmesh's body, run on the first Tab: complete now.
# Sourced, it registers the function.
if [[ "\${funcstack[1]}" == _svcmesh ]]; then
  _svcmesh "$@"
elif (( $+functions[compdef] )); then
  compdef _svcmesh svcmesh
fi
`;
}

import { Argument, Command, type Option } from 'commander';
import { SETTINGS } from '../config.js';
import { type ClientFlags, clientFrom, withClientOptions } from './shared.js';

/** Commands whose first argument is a registered service's name. */
const TAKES_SERVICE = ['ask', 'heartbeat', 'services', 'deregister'];

const SHELLS = ['bash', 'zsh', 'fish'] as const;
const SETTING_KEYS = Object.keys(SETTINGS).join(' ');

/**
 * `source <(svcmesh completion bash)` (or `zsh`, or `svcmesh completion fish | source`), as with
 * `etcdctl completion bash` or `kubectl completion`. Commands and options come from the command tree, so the script never lags behind
 * the program; service names come from the registrar at the moment Tab is pressed.
 */
export function makeCompletionCommand(): Command {
  return new Command('completion')
    .description(
      'print a shell completion script: source <(svcmesh completion bash) in ~/.bashrc, source <(svcmesh completion zsh) after compinit in ~/.zshrc, or svcmesh completion fish > ~/.config/fish/completions/svcmesh.fish',
    )
    .addArgument(new Argument('<shell>', 'the shell to complete in').choices(SHELLS))
    .action((shell: (typeof SHELLS)[number], _flags: unknown, command: Command) => {
      const script = { bash: bashScript, zsh: zshScript, fish: fishScript }[shell];
      process.stdout.write(script(command.parent!));
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
function treeForShell(root: Command, offer: (words: string) => string, subcommandWord: string) {
  const visible = root.commands.filter((c) => !c.name().startsWith('__'));
  const perCommand = (render: (c: Command) => string) =>
    visible
      .map((c) => [c.name(), render(c)])
      .filter(([, body]) => body !== '')
      .map(([name, body]) => `    ${name}) ${body} ;;`)
      .join('\n');
  const config = root.commands.find((c) => c.name() === 'config');
  const optionList = (c: Command) => `opts="${[...c.options.map((o) => o.long), '--help'].join(' ')}"`;
  // A command with subcommands (config list --json): the options of the subcommand on the line.
  const options = perCommand((c) => {
    const withOptions = c.commands.filter((sub) => sub.options.length > 0);
    if (withOptions.length === 0) return optionList(c);
    const branches = withOptions.map((sub) => `${sub.name()}) ${optionList(sub)} ;;`).join(' ');
    return `case "${subcommandWord}" in ${branches} *) ${optionList(c)} ;; esac`;
  });
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

/**
 * The loop both scripts run over the words between the command and the cursor (in `array`, from
 * index `first`): counts the positional ones, skips option values, and keeps --registrar and
 * --token for the names. The same text is valid bash and zsh.
 */
function scanWords(array: string, first: number): string {
  return `  for ((i = ${first}; i < cword; i++)); do
    word="\${${array}[i]}"
    case "$word" in
      --registrar|--token) target+=("$word" "\${${array}[i+1]}") ;;
      --registrar=*|--token=*) target+=("$word") ;;
    esac
    if [[ "$valued" == *" $word "* ]]; then (( i++ )); continue; fi
    [[ "$word" == -* ]] || (( positional++ ))
  done`;
}

function bashScript(root: Command): string {
  const { commands, optionCases, choices, configSubcommands } = treeForShell(root, (words) => `COMPREPLY=($(compgen -W "${words}" -- "$cur"))`, '${words[2]}');
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
  # The registrar and token named on the line, for the names: a registrar may protect its reads.
  local i word positional=0 target=()
${scanWords('words', 2)}
  case "$cmd" in
    ${TAKES_SERVICE.join('|')})
      if [ "$positional" -eq 0 ]; then
        local IFS=$'\\n'
        COMPREPLY=($(compgen -W "$(svcmesh __service-names "\${target[@]}" 2>/dev/null)" -- "$cur"))
      fi ;;
    config)
      if [ "$positional" -eq 0 ]; then
        COMPREPLY=($(compgen -W "${configSubcommands}" -- "$cur"))
      elif [ "$positional" -eq 1 ]; then
        case "\${words[2]}" in get|set|unset) COMPREPLY=($(compgen -W "${SETTING_KEYS}" -- "$cur")) ;; esac
      fi ;;
    completion)
      [ "$positional" -eq 0 ] && COMPREPLY=($(compgen -W "${SHELLS.join(' ')}" -- "$cur")) ;;
    help)
      [ "$positional" -eq 0 ] && COMPREPLY=($(compgen -W "${commands}" -- "$cur")) ;;
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
  const { commands, optionCases, choices, configSubcommands } = treeForShell(root, (words) => `candidates=(${words})`, '${w[3]}');
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
  local -a target
${scanWords('w', 3)}
  case "$cmd" in
    ${TAKES_SERVICE.join('|')})
      (( positional == 0 )) && candidates=(\${(f)"$(svcmesh __service-names "\${target[@]}" 2>/dev/null)"}) ;;
    config)
      if (( positional == 0 )); then
        candidates=(${configSubcommands})
      elif (( positional == 1 )); then
        case "\${w[3]}" in get|set|unset) candidates=(${SETTING_KEYS}) ;; esac
      fi ;;
    completion)
      (( positional == 0 )) && candidates=(${SHELLS.join(' ')}) ;;
    help)
      (( positional == 0 )) && candidates=(${commands}) ;;
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

/**
 * fish completes from `complete` rules, each shown with its description: the commands', the
 * options' and the config keys' own words from the command tree. Service names come from the
 * registrar named on the line, as in the other two shells.
 */
function fishScript(root: Command): string {
  const visible = root.commands.filter((c) => !c.name().startsWith('__'));
  const rule = (condition: string, rest: string) => `complete -c svcmesh -n ${fishQuote(condition)} ${rest}`;
  const valuedOf = (c: Command) => c.options.filter(takesValue).flatMap((o) => [o.long, o.short].filter((f): f is string => !!f));
  const noPositional = (c: Command) => `__svcmesh_positionals ${valuedOf(c).join(' ')}`.trimEnd();
  const config = root.commands.find((c) => c.name() === 'config');
  const lines: string[] = [
    ...visible.map((c) => rule('__svcmesh_needs_command', `-a ${c.name()} -d ${fishQuote(c.description())}`)),
    rule('__svcmesh_needs_command', "-a help -d 'display help for a command'"),
    rule('__svcmesh_needs_command', "-s v -l version -d 'print the version'"),
    rule('__svcmesh_using help; and test (__svcmesh_positionals) -eq 0', `-a ${fishQuote(visible.map((c) => c.name()).join(' '))}`),
    "complete -c svcmesh -s h -l help -d 'display help for command'",
  ];
  for (const c of visible) {
    for (const option of c.options) lines.push(rule(`__svcmesh_using ${c.name()}`, fishOption(option)));
    if (TAKES_SERVICE.includes(c.name())) {
      lines.push(rule(`__svcmesh_using ${c.name()}; and test (${noPositional(c)}) -eq 0`, "-a '(__svcmesh_service_names)'"));
    }
  }
  for (const sub of config?.commands ?? []) {
    lines.push(rule('__svcmesh_using config; and test (__svcmesh_positionals) -eq 0', `-a ${sub.name()} -d ${fishQuote(sub.description())}`));
    for (const option of sub.options) lines.push(rule(`__svcmesh_using config; and __svcmesh_config ${sub.name()}`, fishOption(option)));
  }
  for (const [key, setting] of Object.entries(SETTINGS)) {
    lines.push(rule('__svcmesh_using config; and __svcmesh_config get set unset; and test (__svcmesh_positionals) -eq 1', `-a ${key} -d ${fishQuote(setting.description)}`));
  }
  for (const shell of SHELLS) {
    lines.push(rule('__svcmesh_using completion; and test (__svcmesh_positionals) -eq 0', `-a ${shell}`));
  }
  return `# svcmesh completion for fish: svcmesh completion fish > ~/.config/fish/completions/svcmesh.fish
# (or, for this shell only: svcmesh completion fish | source)

# No command yet: only \`svcmesh\` and options so far.
function __svcmesh_needs_command
    for word in (commandline -opc)[2..]
        string match -q -- '-*' $word; or return 1
    end
end

# The command (the first word after svcmesh that is not an option) is one of $argv.
function __svcmesh_using
    for word in (commandline -opc)[2..]
        string match -q -- '-*' $word; and continue
        contains -- $word $argv
        return
    end
    return 1
end

# The config subcommand is one of $argv.
function __svcmesh_config
    set -l words (commandline -opc)
    set -l at (contains -i -- config $words); or return 1
    set -q words[(math $at + 1)]; and contains -- $words[(math $at + 1)] $argv
end

# How many words after the command are neither options nor an option's value; $argv: the
# command's options that take a value.
function __svcmesh_positionals
    set -l count -1 # the command itself is the first such word
    set -l value 0
    for word in (commandline -opc)[2..]
        if test $value -eq 1
            set value 0
        else if contains -- $word $argv
            set value 1
        else if not string match -q -- '-*' $word
            set count (math $count + 1)
        end
    end
    echo $count
end

# The names registered at the registrar named on the line (or the configured one), with the
# token named on the line: a registrar may protect its reads.
function __svcmesh_service_names
    set -l words (commandline -opc)
    set -l target
    for i in (seq 2 (count $words))
        switch $words[$i]
            case --registrar --token
                set -q words[(math $i + 1)]; and set -a target $words[$i] $words[(math $i + 1)]
            case '--registrar=*' '--token=*'
                set -a target $words[$i]
        end
    end
    svcmesh __service-names $target 2>/dev/null
end

complete -c svcmesh -f
${lines.join('\n')}
`;
}

function takesValue(option: Option): boolean {
  return option.required || option.optional;
}

function fishOption(option: Option): string {
  const flags = [option.short ? `-s ${option.short.slice(1)}` : '', option.long ? `-l ${option.long.slice(2)}` : ''].filter(Boolean);
  if (takesValue(option)) flags.push('-x');
  if (option.argChoices) flags.push(`-a ${fishQuote(option.argChoices.join(' '))}`);
  return `${flags.join(' ')} -d ${fishQuote(option.description)}`;
}

/** A fish single-quoted string: only \\ and \' are special inside one. */
function fishQuote(text: string): string {
  return `'${text.replace(/[\\']/g, '\\$&')}'`;
}

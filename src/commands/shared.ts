import { type Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, resolveSetting } from '../config.js';
import type { RegistrarClient } from '../client/registrar-client.js';
import { fitsInHeader } from '../header-value.js';
import { carriesCredentials, carriesQueryOrFragment, isHttpUrl, isRegistrarUrl, registrarUrlFrom, withoutCredentials } from '../http-url.js';
import { SERVICE_NAME_RULE, isServiceName } from '../service-name.js';

export const DEFAULT_REGISTRAR = 'http://127.0.0.1:5001';

/** A mistake in how a command was called: exit code 2, like commander's own usage errors. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('Expected a port number from 0 to 65535.');
  return port;
}

/**
 * The longest wait an option takes, in seconds (23 days): node's timers cannot wait past 24.8
 * days (a longer one fires at once), and an expiry past the year 275760 has no date to show.
 */
const MAX_SECONDS = 2_000_000;

const SECONDS_PER_UNIT: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3_600 };

/**
 * Seconds, or a duration as consul and etcd flags take one (`30s`, `500ms`, `2m`, `1h30m`): a
 * Consul or etcd user types `--timeout 30s` without thinking.
 */
export function parseSeconds(value: string): number {
  const text = value.trim();
  // Decimal only: Number() would read 0x10 as 16 and 1e3 as 1000.
  let seconds = /^(?:\d+(?:\.\d*)?|\.\d+)$/.test(text) ? Number(text) : Number.NaN;
  if (Number.isNaN(seconds) && /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(text)) {
    seconds = 0;
    for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) seconds += Number(amount) * SECONDS_PER_UNIT[unit!]!;
  }
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_SECONDS) {
    throw new InvalidArgumentError(`Expected a number of seconds, or a duration such as 30s, 500ms or 1h30m, greater than 0 and at most ${MAX_SECONDS} s (23 days).`);
  }
  return seconds;
}

/** A TTL under a second would evict instances between any two heartbeats a service can send. */
export function parseTtl(value: string): number {
  const seconds = parseSeconds(value);
  if (seconds < 1) throw new InvalidArgumentError('Expected at least 1 second: a shorter TTL evicts instances before they can send a heartbeat.');
  return seconds;
}

/**
 * A secret a server is to require: an empty one (`--token ""`, or SVCMESH_TOKEN set to nothing,
 * as when a deployment's secret is missing) would leave the server open without a word.
 */
export function parseSecret(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('Expected a secret, got an empty one: give the secret, or leave the option (and its variable) out to run without one.');
  return value;
}

/**
 * A server's secret goes out in (or is compared with) an Authorization header: one with a line
 * break would refuse every caller, or fail every forward. Checked here rather than in the option's
 * parser, whose message would print the secret.
 */
export function assertSecretFitsHeader(value: string | undefined, option: string, variable: string): void {
  if (value === undefined || fitsInHeader(value)) return;
  throw new UsageError(
    `${option} (or ${variable}) holds a line break, a control character, a letter outside ASCII (ä, ✓) or a space at its start or end, which HTTP clients do not all send as they are: give a secret of ASCII letters, digits and punctuation`,
  );
}

/**
 * A service name the registrar would refuse whatever its state: bad usage, told before any
 * request (so also when the registrar is down), as a URL that is none is.
 */
export function parseServiceName(value: string): string {
  if (!isServiceName(value)) throw new InvalidArgumentError(`Expected a service name of ${SERVICE_NAME_RULE}, as the registrar requires.`);
  return value;
}

/** `--registrar`: an http(s) URL, or `host:port` / `:port` as etcdctl and consul take them. */
export function parseRegistrarUrl(value: string): string {
  if (!isRegistrarUrl(value)) throw new InvalidArgumentError('Expected an http(s) URL such as http://127.0.0.1:5001, or host:port.');
  return registrarUrlFrom(value);
}

export function parseHttpUrl(value: string): string {
  if (!isHttpUrl(value)) throw new InvalidArgumentError('Expected an http(s) URL such as http://127.0.0.1:5001.');
  return value;
}

export interface ClientFlags {
  registrar?: string;
  token?: string;
  json?: boolean;
  /** Seconds a call to the registrar may take (`ask` counts silence with it instead). */
  timeout?: number;
}

/** What a call to the registrar may take when no --timeout is given. */
export const DEFAULT_CALL_TIMEOUT_S = 10;

/**
 * The options every client command shares. `--timeout` too, unless the command gives it a
 * meaning of its own (`ask`: silence, since an answer may take minutes).
 */
export function withClientOptions(command: Command, options: { timeout?: boolean } = {}): Command {
  command
    .addOption(new Option('--registrar <url>', `registrar URL (env SVCMESH_REGISTRAR, setting \`registrar\`, default ${DEFAULT_REGISTRAR})`).argParser(parseRegistrarUrl))
    .addOption(new Option('--token <token>', 'bearer token for a protected registrar (env SVCMESH_TOKEN, setting `token`; "" sends none)'))
    .option('--json', 'print the JSON the registrar returned, for scripts');
  if (options.timeout !== false) {
    command.addOption(
      new Option('--timeout <seconds>', `give up on a call to the registrar after this long (default ${DEFAULT_CALL_TIMEOUT_S} s)`).argParser(parseSeconds),
    );
  }
  return command;
}

/**
 * For `.catch()` on a call that names a service: a 404 for a name the registrar does not know
 * gets a hint (close names, or what is registered) before it is thrown on.
 */
export function hinted(client: RegistrarClient, name: string): (error: unknown) => Promise<never> {
  return async (error) => {
    const { withServiceHint } = await import('./unknown-service.js');
    throw await withServiceHint(error, client, name);
  };
}

/**
 * The registrar URL and token from flags, environment and stored settings, in that order. A
 * settings file that cannot be read stops the command when the registrar was to come from it;
 * when the registrar was given, it costs only the stored token, with a warning.
 */
export async function registrarSettings(flags: Pick<ClientFlags, 'registrar' | 'token'>): Promise<{ baseUrl: string; token?: string }> {
  const given = resolveSetting('registrar', flags.registrar, 'SVCMESH_REGISTRAR', DEFAULT_REGISTRAR) as string;
  const baseUrl = registrarUrlFrom(given);
  if (!isRegistrarUrl(given)) {
    throw new UsageError(`The registrar URL "${given}" is not an http(s) URL: fix SVCMESH_REGISTRAR or \`svcmesh config set registrar <url>\``);
  }
  // It would be shown in every message that names the registrar; the registrar takes a token instead.
  if (carriesCredentials(baseUrl)) {
    throw new UsageError(
      `The registrar URL "${withoutCredentials(baseUrl)}" carries a user name or password, which every message naming the registrar would show: give the URL without them (fix --registrar, SVCMESH_REGISTRAR or \`svcmesh config set registrar <url>\`), and the registrar's token with --token`,
    );
  }
  // Every endpoint's path is appended to the URL as text: after a query or fragment, each call would reach the dashboard.
  if (carriesQueryOrFragment(baseUrl)) {
    throw new UsageError(
      `The registrar URL "${baseUrl}" has a query or fragment (?… or #…), which a registrar URL does not take: give it without them, as ${baseUrl.replace(/[?#].*$/, '')} (scheme, host, port and any path prefix only; fix --registrar, SVCMESH_REGISTRAR or \`svcmesh config set registrar <url>\`)`,
    );
  }
  // `--token ""`: no token for this call, whatever SVCMESH_TOKEN or the stored setting hold.
  if (flags.token === '') return { baseUrl };
  let token: string | undefined;
  try {
    token = resolveSetting('token', flags.token, 'SVCMESH_TOKEN');
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    (await import('../output.js')).warn(`${error.message}. Going on without a stored token`);
    return { baseUrl };
  }
  if (token !== undefined) assertHeaderSafe(token, flags);
  return { baseUrl, token };
}

/** Builds a registrar client from flags, environment and stored settings, in that order. */
export async function clientFrom(flags: ClientFlags, options: { timeoutMs?: number } = {}) {
  const { baseUrl, token } = await registrarSettings(flags);
  const { createRegistrarClient } = await import('../client/registrar-client.js');
  const timeoutMs = options.timeoutMs ?? (flags.timeout ?? DEFAULT_CALL_TIMEOUT_S) * 1000;
  return createRegistrarClient({ baseUrl, token, timeoutMs });
}

/**
 * A token goes out in the Authorization header; one with a line break (a secret file read with
 * its trailing newline, say) would fail every request as if the registrar were unreachable.
 * The message names where the token came from, never the token itself.
 */
function assertHeaderSafe(token: string, flags: Pick<ClientFlags, 'token'>): void {
  if (fitsInHeader(token)) return;
  const [source, fix] = flags.token
    ? ['--token', 'pass it as ASCII letters, digits and punctuation only']
    : process.env.SVCMESH_TOKEN
      ? ['SVCMESH_TOKEN', 'set the variable without them']
      : ['the stored `token` setting', 'store it again with `svcmesh config set token <token>`'];
  throw new UsageError(`The token from ${source} holds characters an HTTP header cannot carry as they are (a line break? a letter outside ASCII? a space at either end?): ${fix}`);
}

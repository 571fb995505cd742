import { chmodSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import envPaths from 'env-paths';
import { fitsInHeader } from './header-value.js';
import { carriesCredentials, carriesQueryOrFragment, isRegistrarUrl, withoutCredentials } from './http-url.js';
import { closeNames } from './commands/unknown-service.js';
import { makeFolder } from './make-folder.js';
import { printable } from './terminal-text.js';

/** The settings `svcmesh config` knows; anything else is a typo worth reporting. */
export const SETTINGS = {
  registrar: {
    description: 'registrar URL used by client commands',
    secret: false,
    // A password in it would show in every message naming the registrar: the token is the way in.
    // A query or fragment would be glued before every endpoint's path (see carriesQueryOrFragment).
    check: (v: string) => isRegistrarUrl(v) && !carriesCredentials(v) && !carriesQueryOrFragment(v),
    expected:
      'an http(s) URL such as http://127.0.0.1:5001, or host:port, without a user name or password (store the token with `svcmesh config set token`) and without a query or fragment (?… or #…; a path such as http://host:5001/mesh is fine)',
  },
  token: {
    description: 'bearer token sent to the registrar',
    secret: true,
    check: (v: string) => v.trim() !== '' && fitsInHeader(v),
    expected: 'a non-empty token of ASCII letters, digits and punctuation (no line breaks, no letters like ä or ✓, no space at either end)',
  },
} as const;

export type SettingKey = keyof typeof SETTINGS;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function assertSettingKey(key: string): asserts key is SettingKey {
  if (!(key in SETTINGS)) {
    const close = closeNames(key, Object.keys(SETTINGS))[0];
    throw new ConfigError(
      `Unknown setting \`${key}\`: ${close ? `did you mean \`${close}\`? ` : ''}expected one of ${Object.keys(SETTINGS).map((k) => `\`${k}\``).join(', ')}`,
    );
  }
}

export interface ConfigStore {
  readonly path: string;
  get(key: SettingKey): string | undefined;
  set(key: SettingKey, value: string): Promise<void>;
  unset(key: SettingKey): Promise<void>;
  list(): Record<string, unknown>;
}

/**
 * Where the settings live: the platform's place for a tool's settings (`~/.config/svcmesh` on
 * Linux, as etcdctl and the ollama CLI keep theirs under their own name), or `SVCMESH_CONFIG_DIR`,
 * which keeps tests away from the user's real settings. Both the reader and conf are given this
 * folder, so they cannot disagree on the file. Early builds kept them where conf does by default
 * (`svcmesh-nodejs`): a file there is still used while the new place has none.
 */
function settingsDir(): string {
  if (process.env.SVCMESH_CONFIG_DIR) return process.env.SVCMESH_CONFIG_DIR;
  const current = envPaths('svcmesh', { suffix: '' }).config;
  const early = envPaths('svcmesh', { suffix: 'nodejs' }).config;
  return !existsSync(path.join(current, 'config.json')) && existsSync(path.join(early, 'config.json')) ? early : current;
}

/** The settings file, as conf names it: known without reading it, so a broken file can still be found. */
export function settingsPath(): string {
  return path.resolve(settingsDir(), 'config.json');
}

/**
 * The file can hold the token: readable by its owner only, in a folder only its owner can list,
 * as gh and docker login keep theirs (the XDG spec asks 0700 for folders it makes, too).
 */
const FILE_MODE = 0o600;
const FOLDER_MODE = 0o700;

const REPAIR = 'fix the file or delete it and set them again (svcmesh config set)';

/** What went wrong with a file, in words, with the code to search for. */
function fileProblem(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  const problems: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EISDIR: 'it is a folder, not a file',
    ENOTDIR: 'a folder on its path is a file',
    // mkdir -p of a folder that exists as a file.
    EEXIST: 'its folder is a file',
    EROFS: 'the file system is read-only',
    ENOSPC: 'no space left on the device',
    // mkdir where the file system allows no folder (inside /proc, say).
    ENOENT: 'its folder cannot be created there',
  };
  const problem = e.code ? problems[e.code] : undefined;
  return problem ? `${problem} (${e.code})` : e.message;
}

/**
 * Every stored setting, read straight from conf's file; {} when there is none. Loading conf and
 * its validator to read a line of JSON cost every client command about 50 ms of start-up. A file
 * that cannot be read or parsed is a ConfigError that names it and says what to do.
 */
export function readStoredSettings(): Record<string, unknown> {
  const file = settingsPath();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    // ENOTDIR: a part of the folder's path is a file, so there is no settings file either; writing one says so.
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return {};
    throw new ConfigError(`Cannot read the settings in ${file}: ${fileProblem(error)}: ${REPAIR}`);
  }
  let stored: unknown;
  try {
    stored = JSON.parse(text);
  } catch (error) {
    // JSON.parse quotes the start of the text, line breaks and all: one message, one line.
    throw new ConfigError(`The settings in ${file} are not valid JSON (${printable((error as Error).message)}): ${REPAIR}`);
  }
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) {
    throw new ConfigError(`The settings in ${file} are not a JSON object: ${REPAIR}`);
  }
  return stored as Record<string, unknown>;
}

/** One stored setting; see readStoredSettings. */
export function readStoredSetting(key: SettingKey): string | undefined {
  const value = readStoredSettings()[key];
  if (value === undefined || typeof value === 'string') return value;
  // Ignoring it would quietly send the request elsewhere (the default registrar, no token).
  const kind = value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
  throw new ConfigError(`The \`${key}\` setting in ${settingsPath()} is ${kind}, not text: ${REPAIR}`);
}

/**
 * The stored settings, to change or list them. Reads go straight to the file (readStoredSettings);
 * changes go through conf (atomic writes), loaded only then. A file that cannot be read is refused
 * before conf sees it, so it is never overwritten; one that cannot be written is named, with why.
 */
export function openConfig(): ConfigStore {
  const file = settingsPath();
  async function change(apply: (conf: import('conf').default<Record<string, string>>) => void): Promise<void> {
    readStoredSettings();
    const { Conf } = await import('./runtime/conf.js');
    try {
      // conf would make the folder itself, with a recursive mkdir that can spin forever.
      makeFolder(path.dirname(file), FOLDER_MODE);
      apply(new Conf<Record<string, string>>({ projectName: 'svcmesh', cwd: path.dirname(file), configFileMode: FILE_MODE }));
      // conf's mode is for a file it creates; one written before this rule (0644) or by hand keeps its
      // own when conf falls back to writing in place, so it is tightened here, on every change.
      chmodSync(file, FILE_MODE);
    } catch (error) {
      throw new Error(`Cannot write the settings to ${file}: ${fileProblem(error)}. Check that its folder can be written, or point SVCMESH_CONFIG_DIR at one that can`);
    }
  }
  return {
    path: file,
    get: (key) => readStoredSetting(key),
    async set(key, value) {
      const setting = SETTINGS[key];
      // A secret is never printed back, not even a mistyped one.
      if (!setting.check(value)) throw new ConfigError(`Expected \`${key}\` to be ${setting.expected}${setting.secret ? '' : `, got "${withoutCredentials(value)}"`}`);
      await change((conf) => conf.set(key, value));
    },
    unset: (key) => change((conf) => conf.delete(key)),
    list: () => readStoredSettings(),
  };
}

/**
 * A client setting in the order users expect: the flag, then the environment, then the stored
 * setting, then the default. The stored settings are read only when the first two are absent.
 */
export function resolveSetting(key: SettingKey, flag: string | undefined, envName: string, fallback?: string): string | undefined {
  if (flag) return flag;
  const fromEnv = process.env[envName];
  if (fromEnv) return fromEnv;
  return readStoredSetting(key) ?? fallback;
}

import { readFileSync } from 'node:fs';
import path from 'node:path';
import envPaths from 'env-paths';
import { isHttpUrl } from './http-url.js';

/** The settings `svcmesh config` knows; anything else is a typo worth reporting. */
export const SETTINGS = {
  registrar: { description: 'registrar URL used by client commands', secret: false, check: isHttpUrl, expected: 'an http(s) URL such as http://127.0.0.1:5001' },
  token: { description: 'bearer token sent to the registrar', secret: true, check: (v: string) => v.length > 0, expected: 'a non-empty string' },
} as const;

export type SettingKey = keyof typeof SETTINGS;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function assertSettingKey(key: string): asserts key is SettingKey {
  if (!(key in SETTINGS)) {
    throw new ConfigError(`Unknown setting \`${key}\`: expected one of ${Object.keys(SETTINGS).map((k) => `\`${k}\``).join(', ')}`);
  }
}

export interface ConfigStore {
  readonly path: string;
  get(key: SettingKey): string | undefined;
  set(key: SettingKey, value: string): void;
  unset(key: SettingKey): void;
  list(): Partial<Record<SettingKey, string>>;
}

/**
 * Where the settings live: conf's own default place (env-paths, as conf computes it), or
 * `SVCMESH_CONFIG_DIR`, which keeps tests away from the user's real settings. Both the reader
 * and conf are given this folder, so they cannot disagree on the file.
 */
function settingsDir(): string {
  return process.env.SVCMESH_CONFIG_DIR || envPaths('svcmesh', { suffix: 'nodejs' }).config;
}

/**
 * Opens the stored settings to change or list them. conf (and its JSON-schema validator) is
 * loaded only here: `svcmesh config` pays for it, the client commands that only read a setting
 * do not (see readStoredSetting).
 */
export async function openConfig(): Promise<ConfigStore> {
  const { Conf } = await import('./runtime/conf.js');
  const conf = new Conf<Partial<Record<SettingKey, string>>>({ projectName: 'svcmesh', cwd: settingsDir() });
  return {
    path: conf.path,
    get: (key) => conf.get(key),
    set(key, value) {
      const setting = SETTINGS[key];
      if (!setting.check(value)) throw new ConfigError(`Expected \`${key}\` to be ${setting.expected}, got "${value}"`);
      conf.set(key, value);
    },
    unset: (key) => conf.delete(key),
    list: () => ({ ...conf.store }),
  };
}

/**
 * A client setting in the order users expect: the flag, then the environment, then the stored
 * setting, then the default. The stored settings are read only when the first two are absent.
 */
export async function resolveSetting(
  key: SettingKey,
  flag: string | undefined,
  envName: string,
  fallback?: string,
): Promise<string | undefined> {
  if (flag) return flag;
  const fromEnv = process.env[envName];
  if (fromEnv) return fromEnv;
  return readStoredSetting(key) ?? fallback;
}

/**
 * One stored setting, read straight from conf's file: loading conf and its validator to read a
 * line of JSON cost every client command about 50 ms of start-up.
 */
export function readStoredSetting(key: SettingKey): string | undefined {
  const file = path.join(settingsDir(), 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`Cannot read the settings in ${file}: ${(error as Error).message}`);
  }
  let stored: unknown;
  try {
    stored = JSON.parse(text);
  } catch {
    throw new ConfigError(`The settings in ${file} are not valid JSON: fix the file or delete it and set them again (svcmesh config set)`);
  }
  const value = typeof stored === 'object' && stored !== null ? (stored as Record<string, unknown>)[key] : undefined;
  return typeof value === 'string' ? value : undefined;
}

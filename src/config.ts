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
 * Opens the stored settings. conf (and its JSON-schema validator) is loaded only here, so the
 * commands that never read settings do not pay for it at start-up. `SVCMESH_CONFIG_DIR` moves
 * the file, which keeps tests away from the user's real settings.
 */
export async function openConfig(dir = process.env.SVCMESH_CONFIG_DIR): Promise<ConfigStore> {
  const { Conf } = await import('./runtime/conf.js');
  const conf = new Conf<Partial<Record<SettingKey, string>>>({
    projectName: 'svcmesh',
    ...(dir && { cwd: dir }),
  });
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
  const stored = (await openConfig()).get(key);
  return stored ?? fallback;
}

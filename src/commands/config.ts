import { Command } from 'commander';
import { SETTINGS, assertSettingKey, openConfig, settingsPath } from '../config.js';
import { withoutCredentials } from '../http-url.js';

export function makeConfigCommand(): Command {
  const config = new Command('config').description(
    `read and change stored settings (${Object.entries(SETTINGS)
      .map(([key, s]) => `${key}: ${s.description}`)
      .join('; ')})`,
  );

  config
    .command('get')
    .description('print one setting (nothing, and exit 1, when it is not set)')
    .argument('<key>', Object.keys(SETTINGS).join(' | '))
    .action(async (key: string) => {
      assertSettingKey(key);
      const value = openConfig().get(key);
      if (value === undefined) {
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`${value}\n`);
    });

  config
    .command('set')
    .description('store a setting')
    .argument('<key>', Object.keys(SETTINGS).join(' | '))
    .argument('<value>')
    .action(async (key: string, value: string) => {
      assertSettingKey(key);
      await openConfig().set(key, value);
    });

  config
    .command('unset')
    .description('remove a stored setting')
    .argument('<key>', Object.keys(SETTINGS).join(' | '))
    .action(async (key: string) => {
      assertSettingKey(key);
      await openConfig().unset(key);
    });

  config
    .command('list')
    .description('print every stored setting (secrets masked unless --show-secrets)')
    .option('--json', 'print them as one JSON object')
    .option('--show-secrets', 'print secrets as they are')
    .action(async (flags: { json?: boolean; showSecrets?: boolean }) => {
      const stored = openConfig().list();
      const shown = Object.fromEntries(
        Object.entries(stored).map(([key, value]) => {
          // A secret is masked whatever it holds; any other value that is not text is shown as
          // JSON, so that what is wrong with the file shows.
          const secret = SETTINGS[key as keyof typeof SETTINGS]?.secret && !flags.showSecrets;
          // A password in a URL stored before it was refused is a secret too.
          return [key, secret ? '********' : typeof value === 'string' && !flags.showSecrets ? withoutCredentials(value) : value];
        }),
      );
      if (flags.json) return void process.stdout.write(`${JSON.stringify(shown)}\n`);
      for (const [key, value] of Object.entries(shown)) process.stdout.write(`${key}=${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
    });

  config
    .command('path')
    .description('print where the settings are stored')
    .action(() => {
      process.stdout.write(`${settingsPath()}\n`);
    });

  return config;
}

import { describe, it } from 'vitest';

/**
 * `describe` for suites that need a program from outside npm (etcd, chromium). Without it the
 * suite is skipped with a loud warning locally, and fails under CI=true: CI installs it, so a
 * missing binary there is a broken setup, not a reason to pass silently.
 */
export function describeIfInstalled(name: string, installed: boolean, missingMessage: string, body: () => void): void {
  if (installed) {
    describe(name, body);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('has what it needs installed', () => {
        throw new Error(missingMessage);
      });
    });
    return;
  }
  console.warn(`\n!!! SKIPPING "${name}": ${missingMessage}. Under CI=true this fails. !!!\n`);
  // Skipped on purpose, with the warning above: the binary is missing on this machine.
  describe.skip(name, body); // reason: the binary is missing here; warned above, and CI=true fails instead
}

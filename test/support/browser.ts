import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { describeIfInstalled } from './requires.js';

/**
 * A real headless Chromium for the dashboard tests: Debian's `chromium` package driven by
 * playwright-core (which never downloads a browser of its own here: there is no network).
 */

/** $CHROMIUM_BIN when set (and then only that), else `chromium` on PATH, else Debian's /usr/bin/chromium. */
export function chromiumBinary(): string | undefined {
  const candidates = process.env.CHROMIUM_BIN
    ? [process.env.CHROMIUM_BIN]
    : [...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'chromium')), '/usr/bin/chromium'];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export const CHROMIUM_MISSING_MESSAGE = 'chromium missing: apt-get install -y chromium (Debian/Ubuntu) to run the dashboard browser tests';

/** `describe` for suites that need it: skipped loudly locally, failing under CI=true when missing. */
export function describeBrowser(name: string, body: () => void): void {
  describeIfInstalled(name, chromiumBinary() !== undefined, CHROMIUM_MISSING_MESSAGE, body);
}

/**
 * Flags for a closed network and a container: without the background-networking ones Chromium
 * keeps trying (and failing) to reach Google's services. The profile is a fresh temporary
 * `--user-data-dir` that playwright-core creates for every launch and removes on close (it
 * refuses a `--user-data-dir` in `args`).
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumBinary();
  if (!executablePath) throw new Error(CHROMIUM_MISSING_MESSAGE);
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
}

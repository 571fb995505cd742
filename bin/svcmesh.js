#!/usr/bin/env node
// Scripts probe for the tool with `svcmesh --version`: answered from package.json here, without
// loading the bundle, so it costs little more than starting node (the bundle answers it too, for
// `node dist/cli.js --version`).
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  process.stdout.write(`${version}\n`);
} else {
  await import('../dist/cli.js');
}

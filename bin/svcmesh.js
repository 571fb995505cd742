#!/usr/bin/env node
// Scripts probe for the tool with `svcmesh --version`: answered from package.json here, without
// loading the bundle, so it costs little more than starting node (the bundle answers it too, for
// `node dist/cli.js --version`).
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  // As the bundle does (src/stdout-reader.ts): a reader gone is fine, a full disk is said in a line.
  process.stdout.on('error', (error) => {
    if (error.code === 'EPIPE') return;
    process.stderr.write(`error cannot write to standard output: ${error.message}\n`);
    process.exitCode = 1;
  });
  process.stdout.write(`${version}\n`);
} else {
  await import('../dist/cli.js');
}

import { Command } from 'commander';
import { VERSION } from '../version.js';

/**
 * `svcmesh version`, as `consul version` and `etcdctl version` answer it: this build and the
 * runtime under it. `--version` stays the bare number scripts compare; this is for a person
 * filing a bug, or a script that wants both in one JSON object.
 */
export function makeVersionCommand(): Command {
  return new Command('version')
    .description('print the version of svcmesh and of the Node.js it runs on')
    .option('--json', 'print {"version", "node", "platform", "arch"}')
    .action(async (flags: { json?: boolean }) => {
      const output = await import('../output.js');
      if (flags.json) {
        output.printJson(JSON.stringify({ version: VERSION, node: process.version, platform: process.platform, arch: process.arch }));
        return;
      }
      output.print(`svcmesh ${VERSION}\nnode    ${process.version} (${process.platform} ${process.arch})`);
    });
}

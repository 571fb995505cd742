import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

export default defineConfig({
  entry: { cli: 'src/cli.ts' },
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outDir: 'dist',
  clean: true,
  splitting: false,
  sourcemap: false,
  // Start-up is mostly parse time: a minified bundle parses faster.
  minify: true,
  // One file, nothing resolved from node_modules at run time: `npm pack` ships bin/ and dist/ only.
  noExternal: [/.*/],
  define: { __SVCMESH_VERSION__: JSON.stringify(version) },
  banner: {
    // commander and friends are CommonJS; inlined into ESM they need a real `require`.
    js: "import { createRequire as __svcmeshCreateRequire } from 'node:module'; const require = __svcmeshCreateRequire(import.meta.url);",
  },
});

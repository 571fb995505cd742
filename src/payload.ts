import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

// node:zlib and node:vm are loaded when a payload is, not at start-up: a command that needs no
// payload (`--version`, the client commands) never pays for them.
const loadBuiltin = createRequire(import.meta.url);

/**
 * Evaluates a payload the build packed into the bundle (CommonJS, brotli, base64) as Node would
 * a CommonJS file sitting next to the bundle. Packed code costs start-up almost nothing until it
 * is needed: a string is scanned, not parsed.
 */
export function loadPayload(name: string, packed: string): unknown {
  const { brotliDecompressSync } = loadBuiltin('node:zlib') as typeof import('node:zlib');
  const { runInThisContext } = loadBuiltin('node:vm') as typeof import('node:vm');
  const source = brotliDecompressSync(Buffer.from(packed, 'base64')).toString('utf8');
  const filename = fileURLToPath(import.meta.url);
  const wrapper = runInThisContext(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: `${filename}[${name}]`,
  }) as (exports: object, require: NodeJS.Require, module: { exports: object }, filename: string, dirname: string) => void;
  const module = { exports: {} };
  wrapper(module.exports, createRequire(filename), module, filename, dirname(filename));
  return module.exports;
}

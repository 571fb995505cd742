import { cpSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { brotliCompressSync, constants as zlib } from 'node:zlib';
import { build as esbuild } from 'esbuild';
import { defineConfig, type Options } from 'tsup';

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

type EsbuildPlugin = NonNullable<Options['esbuildPlugins']>[number];

/**
 * etcd3 loads its gRPC definitions when it is first required, from `${__dirname}/../proto/rpc.proto`.
 * Inlined into dist/cli.js (ESM: no __dirname, and no node_modules at run time) that path does not
 * exist. This points it at `<dir of the bundle>/proto/rpc.proto` and copies etcd3's .proto files
 * there, inside dist/ because package.json "files" ships bin/ and dist/ only.
 */
export const etcd3Proto: EsbuildPlugin = {
  name: 'svcmesh-etcd3-proto',
  setup(build) {
    let protoDir: string | undefined;
    build.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const needle = '`${__dirname}/../proto/rpc.proto`';
      if (!source.includes(needle)) {
        throw new Error(`etcd3 no longer loads ${needle} (${args.path}): update the svcmesh-etcd3-proto plugin in tsup.config.ts`);
      }
      protoDir = join(dirname(args.path), '..', 'proto');
      return {
        // `require` here is the banner's createRequire(import.meta.url): it resolves next to the
        // bundle. (`import.meta` itself would make esbuild treat this CommonJS file as ESM.)
        contents: source.replace(needle, "require.resolve('./proto/rpc.proto')"),
        loader: 'js',
        resolveDir: dirname(args.path),
      };
    });
    build.onEnd((result) => {
      if (protoDir && result.errors.length === 0) cpSync(protoDir, join(build.initialOptions.outdir ?? 'dist', 'proto'), { recursive: true });
    });
  },
};

const define = { __SVCMESH_VERSION__: JSON.stringify(version) };

/**
 * Packs a module and everything it imports into a CommonJS string (minified, brotli, base64)
 * that `src/payload.ts` evaluates on first use. The bundle stays one file, but a command parses
 * only what it runs: `--version` and the client commands never parse the server stack.
 */
async function packPayload(entry: string): Promise<string> {
  const result = await esbuild({
    entryPoints: [entry],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    // SVCMESH_NO_MINIFY=1 keeps names readable in CPU profiles of the server (bench --cpu-prof).
    minify: process.env.SVCMESH_NO_MINIFY !== '1',
    write: false,
    define,
    plugins: [etcd3Proto],
    outdir: 'dist',
    logLevel: 'warning',
  });
  const code = result.outputFiles.find((file) => file.path.endsWith('.js'))?.text ?? '';
  return brotliCompressSync(Buffer.from(code), { params: { [zlib.BROTLI_PARAM_QUALITY]: 9 } }).toString('base64');
}

/** Replaces `import('…/runtime/NAME.js')` in the main bundle with the packed payload of that module. */
const payloads: EsbuildPlugin = {
  name: 'svcmesh-payloads',
  setup(build) {
    const loader = resolve('src/payload.ts');
    build.onResolve({ filter: /[\\/]runtime[\\/][a-z-]+\.js$/ }, (args) => ({
      path: resolve(args.resolveDir, args.path).replace(/\.js$/, '.ts'),
      namespace: 'svcmesh-payload',
    }));
    build.onLoad({ filter: /.*/, namespace: 'svcmesh-payload' }, async (args) => ({
      contents: `const { loadPayload } = require(${JSON.stringify(loader)});\nmodule.exports = loadPayload(${JSON.stringify(args.path.split(/[\\/]/).pop())}, ${JSON.stringify(await packPayload(args.path))});`,
      loader: 'js',
      resolveDir: dirname(loader),
    }));
  },
};

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
  define,
  esbuildPlugins: [payloads, etcd3Proto],
  banner: {
    // commander and friends are CommonJS; inlined into ESM they need a real `require`.
    js: "import { createRequire as __svcmeshCreateRequire } from 'node:module'; const require = __svcmeshCreateRequire(import.meta.url);",
  },
});

/** The CLI as a user and a shell script meet it: exit codes, messages, settings, --json. */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from './support/fake-ollama.js';
import { describeIfInstalled } from './support/requires.js';
import { startSilentServer } from './support/silent-server.js';
import { binPath, closeServer, freePort, removeTempDirs, runSvcmesh, spawnSvcmesh, startSvcmesh, stopAll, type SvcmeshProcess, tempDir, waitFor } from './support/processes.js';

let registrar: SvcmeshProcess;

beforeAll(async () => {
  registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
});

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

describe('usage', () => {
  it('prints the version from package.json', async () => {
    const { version } = (await import('../package.json', { with: { type: 'json' } })).default;
    const result = await runSvcmesh(['--version']);
    expect(result).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('answers `svcmesh version` as consul and etcdctl do: this build and the Node.js under it, as text or JSON', async () => {
    const { version } = (await import('../package.json', { with: { type: 'json' } })).default;
    expect(await runSvcmesh(['version'])).toMatchObject({
      code: 0,
      stdout: `svcmesh ${version}\nnode    ${process.version} (${process.platform} ${process.arch})\n`,
    });
    const json = await runSvcmesh(['version', '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ version, node: process.version, platform: process.platform, arch: process.arch });
    expect(await runSvcmesh(['version', 'extra'])).toMatchObject({ code: 2, stdout: '' });
  });

  it('says where the usage is for a subcommand, and that options go after the command when given before it', async () => {
    const early = await runSvcmesh(['--registrar', ':45001', 'services']);
    expect(early.code).toBe(2);
    expect(early.stderr).toBe("error: unknown option '--registrar'\n(options go after the command: svcmesh services --registrar …)\n(run with --help for usage)\n");
    const late = await runSvcmesh(['services', '--nope']);
    expect(late).toMatchObject({ code: 2, stderr: "error: unknown option '--nope'\n(run `svcmesh services --help` for usage)\n" });
    const nested = await runSvcmesh(['config', 'get']);
    expect(nested).toMatchObject({ code: 2, stderr: "error: missing required argument 'key'\n(run `svcmesh config get --help` for usage)\n" });
  });

  it.each([
    [['bogus']],
    [['services', '--no-such-option']],
    [['register', 'only-a-name']],
    [['heartbeat']],
    [['registrar', '--port', 'seventy']],
    [['registrar', '--store', 'redis://x']],
    [['register', 'web', 'ftp://example.com']],
    [['deregister', 'web', 'not-a-url']],
    [['registrar', '--port', '0', '--allow-hosts', '']],
    [['registrar', '--port', '0', '--allow-hosts', '10.0.0.0/']],
    [['registrar', '--port', '0', '--allow-hosts', '127.0.0.1:5000']],
    [['registrar', '--port', '0', '--target-token-for', 'just-a-secret']],
    [['config', 'set', 'colour', 'blue']],
    [['register', 'web', 'http://127.0.0.1:8080', '--heartbeat-interval', '5']],
    [['register', 'web', 'http://127.0.0.1:8080', '--keep-alive', '--json']],
    [['register', 'web', 'http://127.0.0.1:8080', '--check-path', '/health']],
    [['register', 'web', 'http://127.0.0.1:8080', '--keep-alive', '--check-path', 'health']],
    [['completion', 'powershell']],
    // An empty secret would leave the server open without a word; a TTL past what timers and dates hold.
    [['registrar', '--port', '0', '--token', '']],
    [['ollama', '--port', '0', '--receive-token', ' ']],
    [['registrar', '--port', '0', '--ttl', '1e13']],
    [['registrar', '--port', '0', '--ttl', '0.5']],
    // A secret an HTTP header cannot carry would refuse every caller, or fail every forward.
    [['registrar', '--port', '0', '--token', 'sekrit\nline']],
    [['registrar', '--port', '0', '--target-token', 'sekrit\r']],
    [['registrar', '--port', '0', '--target-token-for', 'ollama_service=sekrit\nline']],
    [['registrar', '--port', '0', '--target-token-for', 'ollama_service=sekrit-héllo']],
    // A space at either end never arrives: HTTP takes it off the header, so the token could never match.
    [['registrar', '--port', '0', '--token', 'sekrit ']],
    [['config', 'set', 'token', ' sekrit']],
    [['ollama', '--port', '0', '--receive-token', 'sekrit\n']],
    [['config', 'set', 'token', 'sekrit\nline']],
    // fetch refuses a URL with credentials, and every error would show them to callers.
    [['ollama', '--port', '0', '--ollama-host', 'http://admin:sekrit@127.0.0.1']],
    [['ollama', '--port', '0', '--ollama-host', 'admin:sekrit@127.0.0.1:11434']],
    [['services', '--registrar', 'http://admin:sekrit@127.0.0.1:5001']],
    [['ollama', '--port', '0', '--register', '--registrar', 'http://admin:sekrit@127.0.0.1:5001']],
    // A letter outside ASCII goes out as UTF-8 from curl and Go but Latin-1 from node and browsers: the right token would be refused for some.
    [['registrar', '--port', '0', '--token', 'sekrit-pässwörd']],
    [['config', 'set', 'token', 'sekrit-✓']],
    // The root's -v/--version is the root's alone: after a command it is an unknown option, not a version probe.
    [['ask', 'ollama_service', 'what', 'does', '-v', 'mean']],
    [['services', '--watch', '--json', '-v']],
    [['config', 'list', '--version']],
  ])('exits 2 for bad usage: svcmesh %j', async (args) => {
    const result = await runSvcmesh(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/error/i);
    expect(result.stdout).toBe('');
    // A secret refused is never printed back.
    expect(result.stderr).not.toContain('sekrit');
  });

  it('answers -v and --version before any command, from the shim and from the bundle; help still works', async () => {
    const { version } = (await import('../package.json', { with: { type: 'json' } })).default;
    expect(await runSvcmesh(['-v'])).toMatchObject({ code: 0, stdout: `${version}\n` });
    // More than one argument: past the shim's fast path, commander answers.
    expect(await runSvcmesh(['--version', 'services'])).toMatchObject({ code: 0, stdout: `${version}\n` });
    const bundle = spawnSync(process.execPath, [path.join(path.dirname(binPath), '..', 'dist', 'cli.js'), '-v'], { encoding: 'utf8' });
    expect(bundle).toMatchObject({ status: 0, stdout: `${version}\n` });
    for (const args of [['help', 'ask'], ['ask', '--help']]) {
      const help = await runSvcmesh(args);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('Usage: svcmesh ask [options] <service> [message...]');
    }
    // A subcommand's subcommand, as `git help`/`kubectl help` users type it.
    for (const args of [['help', 'config', 'list'], ['config', 'list', '--help']]) {
      const help = await runSvcmesh(args);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('Usage: svcmesh config list [options]');
    }
  });

  it('help for a command that does not exist says so, with the close one, exit 2; help for one that exists shows it', async () => {
    const unknown = await runSvcmesh(['help', 'servces']);
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toContain("unknown command 'servces'");
    expect(unknown.stderr).toContain('Did you mean services?');
    const known = await runSvcmesh(['help', 'services']);
    expect(known.code).toBe(0);
    expect(known.stdout).toMatch(/^Usage: svcmesh services /);
  });

  it('names SVCMESH_TARGET_TOKENS, not the flag, for an entry of the variable that cannot be sent, and says what is wrong with it', async () => {
    const result = await runSvcmesh(['registrar', '--port', '0'], { env: { SVCMESH_TARGET_TOKENS: 'ollama_service=sekrit-héllo' } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('SVCMESH_TARGET_TOKENS entry "ollama_service=…" holds a line break, a control character, a letter outside ASCII');
    expect(result.stderr).not.toContain('sekrit');
  });

  it('refuses a token an HTTP header cannot carry with exit 2, naming where it came from and never the token', async () => {
    const bad = 'sekrit\nvalue';
    const configDir = tempDir('svcmesh-config-');
    // `config set` refuses such a token now; one written by hand (or by an older svcmesh) is still read.
    expect((await runSvcmesh(['config', 'set', 'token', bad], { env: { SVCMESH_CONFIG_DIR: configDir } })).code).toBe(2);
    const settingsFile = (await runSvcmesh(['config', 'path'], { env: { SVCMESH_CONFIG_DIR: configDir } })).stdout.trim();
    mkdirSync(path.dirname(settingsFile), { recursive: true });
    writeFileSync(settingsFile, JSON.stringify({ token: bad }));
    const runs = {
      '--token': await runSvcmesh(['register', 'web', 'http://127.0.0.1:8080', '--registrar', registrar.url, '--token', bad]),
      SVCMESH_TOKEN: await runSvcmesh(['register', 'web', 'http://127.0.0.1:8080', '--registrar', registrar.url], { env: { SVCMESH_TOKEN: bad } }),
      'the stored `token` setting': await runSvcmesh(['services', '--registrar', registrar.url], { env: { SVCMESH_CONFIG_DIR: configDir } }),
    };
    // The Ollama service registering itself reads the token the same way, and stops before listening.
    const service = await runSvcmesh(['ollama', '--port', '0', '--host', '127.0.0.1', '--register', '--registrar', registrar.url], { env: { SVCMESH_TOKEN: bad } });
    expect(service, 'svcmesh ollama --register').toMatchObject({ code: 2 });
    expect(service.stderr).toContain('The token from SVCMESH_TOKEN holds characters an HTTP header cannot carry');
    expect(service.stdout).not.toContain('listening');
    for (const [source, result] of Object.entries(runs)) {
      expect(result, source).toMatchObject({ code: 2, stdout: '' });
      expect(result.stderr).toContain(`The token from ${source} holds characters an HTTP header cannot carry as they are (a line break? a letter outside ASCII? a space at either end?)`);
      expect(result.stderr).not.toContain('sekrit');
      expect(result.stderr).not.toContain('Is the registrar running there?');
    }
  });

  it('names the dashboard when the registrar starts, and it is there', async () => {
    const line = registrar.output().split('\n').find((l) => l.includes('listening on')) ?? '';
    expect(line).toContain(`dashboard: ${registrar.url}/`);
    const page = await fetch(`${registrar.url}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<title>svcmesh registrar</title>');
  });

  it('explains a port already in use and exits 1', async () => {
    const result = await runSvcmesh(['registrar', '--host', '127.0.0.1', '--port', String(registrar.port)]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Port ${registrar.port} on 127.0.0.1 is already in use`);
  });
});

describe('finding the registrar', () => {
  it('uses --registrar, then SVCMESH_REGISTRAR, then the stored setting, then the default', async () => {
    const configDir = tempDir('svcmesh-config-');
    const env = { SVCMESH_CONFIG_DIR: configDir };
    await runSvcmesh(['register', 'ordering', 'http://127.0.0.1:7100', '--registrar', registrar.url]);
    const deadPort = await freePort();
    const dead = `http://127.0.0.1:${deadPort}`;

    // Nothing configured: the default, where nothing runs in this test.
    const byDefault = await runSvcmesh(['services', '--json'], { env });
    if (deadPort !== 5001) expect(byDefault.stderr).toContain('http://127.0.0.1:5001');

    expect((await runSvcmesh(['config', 'set', 'registrar', registrar.url], { env })).code).toBe(0);
    const stored = await runSvcmesh(['services', '--json'], { env });
    expect(stored.code).toBe(0);
    expect(JSON.parse(stored.stdout).services.ordering).toBe('http://127.0.0.1:7100');

    const fromEnv = await runSvcmesh(['services', '--json'], { env: { ...env, SVCMESH_REGISTRAR: dead } });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stderr).toContain(dead);

    const fromFlag = await runSvcmesh(['services', '--json', '--registrar', registrar.url], { env: { ...env, SVCMESH_REGISTRAR: dead } });
    expect(fromFlag.code).toBe(0);
  });

  it('takes host:port and :port for the registrar, as etcdctl and consul do, from the flag, the variable and the setting', async () => {
    const env = { SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') };
    const hostPort = registrar.url.replace(/^http:\/\//, '');
    const port = `:${new URL(registrar.url).port}`;
    for (const [args, extra] of [[['--registrar', hostPort], {}], [['--registrar', port], {}], [[], { SVCMESH_REGISTRAR: hostPort }]] as const) {
      const result = await runSvcmesh(['status', ...args], { env: { ...env, ...extra } });
      expect(result, result.stderr).toMatchObject({ code: 0 });
      expect(result.stdout).toContain(`Registrar  http://127.0.0.1${port}`);
    }
    expect((await runSvcmesh(['config', 'set', 'registrar', hostPort], { env })).code).toBe(0);
    expect((await runSvcmesh(['status'], { env })).code).toBe(0);
    // Port 0, and a URL that lost its slashes (which URL parsing would read as http://0.0.19.137/).
    for (const wrong of [':0', 'http:5001']) expect((await runSvcmesh(['status', '--registrar', wrong], { env })).code).toBe(2);
  });

  it('refuses a registrar URL with a query or fragment with exit 2, from the flag, the variable and the setting; a path prefix still works', async () => {
    const env = { SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') };
    for (const odd of [`${registrar.url}?x=1`, `${registrar.url}#frag`, `${registrar.url}/?`]) {
      const viaFlag = await runSvcmesh(['status', '--registrar', odd], { env });
      expect(viaFlag.code, odd).toBe(2);
      expect(viaFlag.stdout, odd).toBe('');
      expect(viaFlag.stderr, odd).toContain(`The registrar URL "${odd}" has a query or fragment`);
      expect(viaFlag.stderr, odd).toContain(`give it without them, as ${registrar.url}`);
      const viaEnv = await runSvcmesh(['services'], { env: { ...env, SVCMESH_REGISTRAR: odd } });
      expect(viaEnv.code, odd).toBe(2);
      expect(viaEnv.stderr, odd).toContain('has a query or fragment');
      const stored = await runSvcmesh(['config', 'set', 'registrar', odd], { env });
      expect(stored.code, odd).toBe(2);
      expect(stored.stderr, odd).toContain('without a query or fragment');
    }
    expect((await runSvcmesh(['config', 'list'], { env })).stdout).toBe('');
    // Stored before it was refused: named when used.
    writeFileSync(path.join(env.SVCMESH_CONFIG_DIR, 'config.json'), JSON.stringify({ registrar: `${registrar.url}?x=1` }));
    const used = await runSvcmesh(['status'], { env });
    expect(used.code).toBe(2);
    expect(used.stderr).toContain('svcmesh config set registrar <url>');

    // A registrar behind a proxy under a path: the endpoints go after the prefix.
    const proxy = createServer((req, res) => {
      const upstream = request(`${registrar.url}${(req.url ?? '/').replace(/^\/mesh/, '')}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const prefixed = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/mesh`;
      const behind = await runSvcmesh(['status', '--registrar', prefixed], { env });
      expect(behind.code, behind.stderr).toBe(0);
      expect(behind.stdout).toContain('Status     ok');
    } finally {
      await closeServer(proxy);
    }
  });

  it('names the URL and the cause when the registrar cannot be reached', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const result = await runSvcmesh(['heartbeat', 'x', '--registrar', dead]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Cannot reach ${dead}/heartbeat: ECONNREFUSED`);
    expect(result.stderr).toContain('svcmesh registrar');
  });
});

describe('config', () => {
  it('set, get, list (secret masked), unset and path', async () => {
    const env = { SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') };
    expect((await runSvcmesh(['config', 'set', 'token', 'hunter2'], { env })).code).toBe(0);
    expect((await runSvcmesh(['config', 'set', 'registrar', 'http://10.0.0.5:5001'], { env })).code).toBe(0);
    expect((await runSvcmesh(['config', 'get', 'token'], { env })).stdout).toBe('hunter2\n');
    const list = await runSvcmesh(['config', 'list'], { env });
    expect(list.stdout).toBe('token=********\nregistrar=http://10.0.0.5:5001\n');
    expect((await runSvcmesh(['config', 'path'], { env })).stdout).toContain(env.SVCMESH_CONFIG_DIR);
    expect((await runSvcmesh(['config', 'unset', 'token'], { env })).code).toBe(0);
    const missing = await runSvcmesh(['config', 'get', 'token'], { env });
    expect(missing).toMatchObject({ code: 1, stdout: '' });
  });

  it('keeps the stored token readable by its owner only: the file 0600, the folders it makes 0700, an older 0644 file tightened', async () => {
    const parent = path.join(tempDir('svcmesh-config-'), 'new-parent');
    const configDir = path.join(parent, 'svcmesh');
    const env = { SVCMESH_CONFIG_DIR: configDir };
    expect((await runSvcmesh(['config', 'set', 'token', 's3cret'], { env })).code).toBe(0);
    const file = path.join(configDir, 'config.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(configDir).mode & 0o777).toBe(0o700);
    expect(statSync(parent).mode & 0o777).toBe(0o700);

    // A file stored before this rule still reads, and is tightened the next time svcmesh writes it.
    chmodSync(file, 0o644);
    expect(await runSvcmesh(['config', 'get', 'token'], { env })).toMatchObject({ code: 0, stdout: 's3cret\n' });
    expect((await runSvcmesh(['config', 'set', 'registrar', 'http://127.0.0.1:5001'], { env })).code).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('keeps the settings in ~/.config/svcmesh, and still reads them where early builds kept them', async () => {
    const home = tempDir('svcmesh-home-');
    const env = { HOME: home, SVCMESH_CONFIG_DIR: undefined, XDG_CONFIG_HOME: undefined };
    const early = path.join(home, '.config', 'svcmesh-nodejs');
    mkdirSync(early, { recursive: true });
    writeFileSync(path.join(early, 'config.json'), '{"registrar": "http://10.0.0.7:5001"}');
    expect(await runSvcmesh(['config', 'get', 'registrar'], { env })).toMatchObject({ code: 0, stdout: 'http://10.0.0.7:5001\n' });
    expect((await runSvcmesh(['config', 'path'], { env })).stdout).toBe(`${path.join(early, 'config.json')}\n`);
    rmSync(early, { recursive: true });
    expect((await runSvcmesh(['config', 'set', 'registrar', 'http://10.0.0.8:5001'], { env })).code).toBe(0);
    const file = path.join(home, '.config', 'svcmesh', 'config.json');
    expect((await runSvcmesh(['config', 'path'], { env })).stdout).toBe(`${file}\n`);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ registrar: 'http://10.0.0.8:5001' });
  });

  it('a settings file that is not JSON is named, with what to do, and client commands stop at it', async () => {
    const configDir = tempDir('svcmesh-config-');
    writeFileSync(path.join(configDir, 'config.json'), '{"registrar": "http://127.0.0.1:5001",');
    const result = await runSvcmesh(['services', '--json'], { env: { SVCMESH_CONFIG_DIR: configDir } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${path.join(configDir, 'config.json')} are not valid JSON`);
    expect(result.stderr).toContain('svcmesh config set');
  });

  it('says a settings file is not JSON on one line, its line breaks written out as \\n', async () => {
    const configDir = tempDir('svcmesh-config-');
    writeFileSync(path.join(configDir, 'config.json'), 'not json\n');
    const result = await runSvcmesh(['config', 'list'], { env: { SVCMESH_CONFIG_DIR: configDir } });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^error The settings in .* are not valid JSON \(.*"not json\\n".*\): fix the file or delete it .*\n$/);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it.each([
    ['not JSON', (file: string) => writeFileSync(file, '{bad json'), 'are not valid JSON'],
    ['a folder', (file: string) => mkdirSync(file), 'it is a folder, not a file (EISDIR)'],
  ])('a settings file that is %s: `config path` still shows it, the other config commands name it and exit 2', async (_what, breakIt, problem) => {
    const configDir = tempDir('svcmesh-config-');
    const file = path.join(configDir, 'config.json');
    breakIt(file);
    const env = { SVCMESH_CONFIG_DIR: configDir };
    expect(await runSvcmesh(['config', 'path'], { env })).toMatchObject({ code: 0, stdout: `${file}\n`, stderr: '' });
    for (const args of [['config', 'list'], ['config', 'get', 'token'], ['config', 'set', 'token', 'x'], ['config', 'unset', 'token']]) {
      const result = await runSvcmesh(args, { env });
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr, args.join(' ')).toContain(`${file}`);
      expect(result.stderr, args.join(' ')).toContain(problem);
      expect(result.stderr, args.join(' ')).toContain('fix the file or delete it');
    }
  });

  it('a stored setting that is not text is named with the file, not quietly ignored', async () => {
    const configDir = tempDir('svcmesh-config-');
    const file = path.join(configDir, 'config.json');
    writeFileSync(file, '{"registrar": 5001, "token": null}');
    const env = { SVCMESH_CONFIG_DIR: configDir };
    const services = await runSvcmesh(['services'], { env });
    expect(services.code).toBe(2);
    expect(services.stderr).toContain(`The \`registrar\` setting in ${file} is a number, not text: fix the file`);
    expect(await runSvcmesh(['config', 'get', 'token'], { env })).toMatchObject({ code: 2, stdout: '' });
    // A secret stays masked whatever it holds; anything else is shown as the JSON it is.
    expect((await runSvcmesh(['config', 'list'], { env })).stdout).toBe('registrar=5001\ntoken=********\n');
    writeFileSync(file, '{"registrar": {"a": 1}, "token": ["sekrit"]}');
    const listed = await runSvcmesh(['config', 'list'], { env });
    expect(listed.stdout).toBe('registrar={"a":1}\ntoken=********\n');
    expect((await runSvcmesh(['config', 'list', '--json'], { env })).stdout).not.toContain('sekrit');
  });

  it('a client command given its registrar does not need a broken settings file; one that needs it stops at it', async () => {
    const configDir = tempDir('svcmesh-config-');
    const file = path.join(configDir, 'config.json');
    writeFileSync(file, '{bad json');
    const env = { SVCMESH_CONFIG_DIR: configDir };
    const given = await runSvcmesh(['status', '--registrar', registrar.url], { env });
    expect(given.code, given.stderr).toBe(0);
    expect(given.stdout).toContain('Status     ok');
    // Its stored token cannot be read: said once, on stderr.
    expect(given.stderr).toContain(`warning The settings in ${file} are not valid JSON`);
    const fromEnv = await runSvcmesh(['services', '--json'], { env: { ...env, SVCMESH_REGISTRAR: registrar.url } });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(JSON.parse(fromEnv.stdout)).toHaveProperty('services');
    const needed = await runSvcmesh(['status'], { env });
    expect(needed.code).toBe(2);
    expect(needed.stderr).toContain(`The settings in ${file} are not valid JSON`);
  });

  it('a settings file that cannot be written is named, with the cause, and exits 1', async () => {
    const blocker = path.join(tempDir('svcmesh-config-'), 'a-file');
    writeFileSync(blocker, '');
    const configDir = path.join(blocker, 'svcmesh');
    const result = await runSvcmesh(['config', 'set', 'token', 'x'], { env: { SVCMESH_CONFIG_DIR: configDir } });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error Cannot write the settings to /);
    expect(result.stderr).toContain(`${path.join(configDir, 'config.json')}: a folder on its path is a file (ENOTDIR)`);
    // Nothing stored there, and reading says so instead of failing.
    expect(await runSvcmesh(['config', 'list'], { env: { SVCMESH_CONFIG_DIR: configDir } })).toMatchObject({ code: 0, stdout: '' });
  });

  it('a settings folder the system will not create (inside /proc) is an error at once, not a spin', async () => {
    const configDir = '/proc/svcmesh-test-no-such-folder';
    const result = await runSvcmesh(['config', 'set', 'registrar', 'http://127.0.0.1:5001'], { env: { SVCMESH_CONFIG_DIR: configDir }, timeoutMs: 10_000 });
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`Cannot write the settings to ${path.join(configDir, 'config.json')}: its folder cannot be created there (ENOENT)`);
  });

  it('suggests the setting a mistyped name is close to', async () => {
    const result = await runSvcmesh(['config', 'set', 'registar', 'http://127.0.0.1:5001'], { env: { SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Unknown setting `registar`: did you mean `registrar`? expected one of `registrar`, `token`');
  });

  it('refuses a registrar URL with a password, never printing it; one stored before is masked in list', async () => {
    const configDir = tempDir('svcmesh-config-');
    const env = { SVCMESH_CONFIG_DIR: configDir };
    const refused = await runSvcmesh(['config', 'set', 'registrar', 'http://admin:hunter2@127.0.0.1:45001'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('without a user name or password');
    expect(refused.stderr).toContain('got "http://***@127.0.0.1:45001"');
    expect(refused.stderr).not.toContain('hunter2');
    // A space before it, or no scheme at all: refused too, the password never shown.
    for (const value of [' http://admin:hunter2@127.0.0.1:45001', 'admin:hunter2@127.0.0.1:45001']) {
      const spaced = await runSvcmesh(['config', 'set', 'registrar', value], { env });
      expect(spaced.code, value).toBe(2);
      expect(spaced.stderr, value).not.toContain('hunter2');
    }
    const viaFlag = await runSvcmesh(['services', '--registrar', ' http://admin:hunter2@127.0.0.1:45001'], { env });
    expect(viaFlag.code).toBe(2);
    expect(viaFlag.stderr).not.toContain('hunter2');
    expect((await runSvcmesh(['config', 'list'], { env })).stdout).toBe('');

    writeFileSync(path.join(configDir, 'config.json'), JSON.stringify({ registrar: 'http://admin:hunter2@127.0.0.1:45001' }));
    expect((await runSvcmesh(['config', 'list'], { env })).stdout).toBe('registrar=http://***@127.0.0.1:45001\n');
    expect((await runSvcmesh(['config', 'list', '--json'], { env })).stdout).toBe('{"registrar":"http://***@127.0.0.1:45001"}\n');
    expect((await runSvcmesh(['config', 'list', '--show-secrets'], { env })).stdout).toBe('registrar=http://admin:hunter2@127.0.0.1:45001\n');
    const using = await runSvcmesh(['services'], { env });
    expect(using.code).toBe(2);
    expect(using.stderr).toContain('svcmesh config set registrar <url>');
    expect(using.stderr).not.toContain('hunter2');
  });

  it('rejects a registrar setting that is not a URL', async () => {
    const result = await runSvcmesh(['config', 'set', 'registrar', 'localhost']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Expected `registrar` to be an http(s) URL');
  });
});

describe('services', () => {
  it('shows metadata in its own column, only when some instance has any', async () => {
    const own = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    await runSvcmesh(['register', 'plain', 'http://127.0.0.1:8080', '--registrar', own.url]);
    const without = await runSvcmesh(['services', '--registrar', own.url]);
    expect(without.stdout.split('\n')[0]).toMatch(/^SERVICE +URL +LAST HEARTBEAT +EXPIRES$/);
    await runSvcmesh(['register', 'tagged', 'http://127.0.0.1:8081', '--metadata', '{"model":"llama3.2","zone":"eu west"}', '--registrar', own.url]);
    const withMetadata = await runSvcmesh(['services', '--registrar', own.url]);
    expect(withMetadata.stdout.split('\n')[0]).toMatch(/^SERVICE +URL +LAST HEARTBEAT +EXPIRES +METADATA$/);
    expect(withMetadata.stdout).toMatch(/^tagged +http:\/\/127\.0\.0\.1:8081 +(just now|1s ago) +in \dm \d+s +model=llama3\.2 zone="eu west"$/m);
    // Long metadata is cut at 60 characters, between characters: never half an emoji (a �).
    await runSvcmesh(['register', 'emoji', 'http://127.0.0.1:8082', '--metadata', JSON.stringify({ k: `${'a'.repeat(56)}🎉🎉🎉` }), '--registrar', own.url]);
    const cut = (await runSvcmesh(['services', 'emoji', '--registrar', own.url])).stdout;
    expect(cut).toContain(`k=${'a'.repeat(56)}🎉…`);
    expect(cut).not.toContain('\uFFFD');
    // Nor inside an emoji of several code points (a family, a flag), nor between a letter and its accent.
    await runSvcmesh(['register', 'emoji', 'http://127.0.0.1:8083', '--metadata', JSON.stringify({ k: `${'a'.repeat(56)}👨‍👩‍👧e\u0301🇫🇷` }), '--registrar', own.url]);
    const family = (await runSvcmesh(['services', 'emoji', '--registrar', own.url])).stdout;
    expect(family).toContain(`k=${'a'.repeat(56)}👨‍👩‍👧…`);
    // Rows sorted by name then URL, whatever the order of registration.
    await runSvcmesh(['register', 'alpha', 'http://127.0.0.1:9002', '--registrar', own.url]);
    await runSvcmesh(['register', 'alpha', 'http://127.0.0.1:9001', '--registrar', own.url]);
    const rows = (await runSvcmesh(['services', '--registrar', own.url])).stdout.trim().split('\n').slice(1);
    expect(rows.map((row) => row.split(/ +/).slice(0, 2).join(' '))).toEqual([
      'alpha http://127.0.0.1:9001',
      'alpha http://127.0.0.1:9002',
      'emoji http://127.0.0.1:8082',
      'emoji http://127.0.0.1:8083',
      'plain http://127.0.0.1:8080',
      'tagged http://127.0.0.1:8081',
    ]);
    await own.stop();
  });

  it('marks an instance the last forward could not reach: in the table, in /services/NAME, in a later snapshot', async () => {
    const own = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    await runSvcmesh(['register', 'flaky', deadUrl, '--registrar', own.url]);
    await runSvcmesh(['register', 'steady', 'http://127.0.0.1:8080', '--registrar', own.url]);
    const before = await runSvcmesh(['services', '--registrar', own.url]);
    expect(before.stdout).not.toContain('unreachable');

    const failed = await fetch(`${own.url}/forward`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: 'flaky', message: 'hi' }) });
    expect(failed.status).toBe(502);
    const table = await runSvcmesh(['services', '--registrar', own.url]);
    expect(table.stdout).toMatch(new RegExp(`^flaky +${deadUrl} unreachable +`, 'm'));
    expect(table.stdout).toMatch(/^steady +http:\/\/127\.0\.0\.1:8080 +(just now|\d+s ago)/m);
    const one = (await (await fetch(`${own.url}/services/flaky`)).json()) as { instances: Array<{ down?: boolean }> };
    expect(one.instances[0]?.down).toBe(true);

    // A watcher that connects after the `down` event still learns of it, from the snapshot.
    const watcher = spawnSvcmesh(['services', '--watch', '--json', '--registrar', own.url]);
    await waitFor(() => watcher.stdout().includes('\n'), 10_000, 'the snapshot');
    const snapshot = JSON.parse(watcher.stdout().split('\n')[0]!) as { type: string; services: Record<string, Array<{ down?: boolean }>> };
    expect(snapshot.type).toBe('snapshot');
    expect(snapshot.services.flaky?.[0]?.down).toBe(true);
    expect(snapshot.services.steady?.[0]?.down).toBeUndefined();
    watcher.child.kill('SIGINT');
    expect((await watcher.exited).code).toBe(130);
    await own.stop();
  });

  describeIfInstalled('services --watch at a terminal', spawnSync('script', ['--version']).status === 0, 'util-linux `script` (Debian: bsdutils) is needed to give the watch a terminal', () => {
    /** What a test started here: closed after it, whatever it asserted. */
    const cleanups: Array<() => Promise<unknown> | unknown> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    it('says on the screen, through every redraw, that the registrar is away, until its events come again', async () => {
      // A registrar the test switches off and on: /events answers 503 while it is away.
      let away = false;
      const streams: ServerResponse[] = [];
      const now = () => new Date().toISOString();
      const instance = () => ({ url: 'http://127.0.0.1:8080', registered_at: now(), last_heartbeat: now(), expires_at: new Date(Date.now() + 300_000).toISOString(), metadata: {} });
      const server = createServer((req, res) => {
        if (req.url === '/health') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        if (req.url === '/catalog') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ services: { watched: [instance()] } }));
        if (req.url !== '/events') return void res.writeHead(404).end();
        if (away) return void res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"restarting"}');
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`event: snapshot\ndata: ${JSON.stringify({ type: 'snapshot', services: { watched: [instance()] } })}\n\n`);
        streams.push(res);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanups.push(() => closeServer(server));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const session = spawn('script', ['-qfec', `stty rows 24 cols 200; exec '${process.execPath}' '${binPath}' services --watch --registrar ${url}`, '/dev/null'], {
        env: { ...process.env, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') },
      });
      cleanups.push(() => session.kill('SIGKILL'));
      let screen = '';
      session.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
      const frames = () => screen.split('\x1b[H');
      /** The last screen drawn whole: the one before the last, after `count` frames and two more. */
      const frameAfter = async (count: number, what: string) => {
        await waitFor(() => frames().length >= count + 2, 10_000, what);
        return frames()[count] ?? '';
      };

      await waitFor(() => (frames().at(-1) ?? '').includes(`watching ${url}/events`), 10_000, 'the watch to draw its screen');
      away = true;
      for (const stream of streams.splice(0)) stream.end();
      await waitFor(() => /disconnected.*reconnecting/.test(frames().at(-1) ?? ''), 10_000, 'the screen to say the registrar is away');
      // Drawn again a second later, and again: a warning written under the table would be gone by now.
      const later = await frameAfter(frames().length + 1, 'two redraws after the disconnect');
      expect(later).toMatch(new RegExp(`^disconnected(: ${url}/events answered 503: restarting| from ${url}/events: the registrar closed the event stream); reconnecting( in [\\d.]+ s|…) — Ctrl-C to stop`, 'm'));
      expect(later).not.toContain(`watching ${url}/events`);
      expect(later).toMatch(/^watched +http:\/\/127\.0\.0\.1:8080 /m);

      away = false;
      await waitFor(() => (frames().at(-1) ?? '').includes(`watching ${url}/events`), 15_000, 'the watch to connect again');
      const back = await frameAfter(frames().length, 'a redraw after connecting again');
      expect(back).toContain(`watching ${url}/events — Ctrl-C to stop`);
      expect(back).not.toContain('disconnected');
    });

    it('watching one service not registered yet says it waits for that one, not that nothing is registered', async () => {
      const own = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
      await runSvcmesh(['register', 'present', 'http://127.0.0.1:8080', '--registrar', own.url]);
      const session = spawn('script', ['-qfec', `exec '${process.execPath}' '${binPath}' services nothere --watch --registrar ${own.url}`, '/dev/null'], {
        env: { ...process.env, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') },
      });
      let screen = '';
      session.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
      try {
        await waitFor(() => screen.includes(`watching ${own.url}/events`), 10_000, 'the watch to draw its screen');
        const frame = screen.split('\x1b[H').at(-1) ?? '';
        expect(frame).toContain(`No instance of nothere is registered at ${own.url} yet (waiting)`);
        expect(screen).not.toContain('No services registered');
      } finally {
        session.kill('SIGKILL');
        await own.stop();
      }
    });

    it('keeps heartbeat times fresh, marks an instance a forward could not reach, and leaves on Ctrl-C', async () => {
      const own = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
      await runSvcmesh(['register', 'watched', 'http://127.0.0.1:8080', '--registrar', own.url]);
      await runSvcmesh(['register', 'gone', `http://127.0.0.1:${await freePort()}`, '--registrar', own.url]);
      // More instances than an 8-line terminal holds: the live view draws what fits, and counts the rest.
      for (let i = 1; i <= 5; i += 1) await runSvcmesh(['register', `zz${i}`, `http://127.0.0.1:${9100 + i}`, '--registrar', own.url]);
      // `exec`: Ctrl-C must reach the watch alone; a shell in between (dash, as CI's /bin/sh) dies of it.
      const session = spawn('script', ['-qfec', `stty rows 8 cols 120; exec '${process.execPath}' '${binPath}' services --watch --registrar ${own.url}`, '/dev/null'], {
        env: { ...process.env, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') },
      });
      let screen = '';
      session.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => session.once('close', (code) => resolve(code)));
      // The screen as last drawn: each redraw starts at the top left.
      const lastFrame = () => screen.split('\x1b[H').at(-1) ?? '';
      const row = (name: string) => lastFrame().split('\n').find((line) => line.startsWith(`${name} `)) ?? '';
      /** Seconds since the last heartbeat, as the row shows it. */
      const ageOf = (line: string) => (line.includes('just now') ? 0 : Number(/\b(\d+)s ago/.exec(line)?.[1] ?? Number.POSITIVE_INFINITY));
      try {
        await waitFor(() => /\b[3-9]s ago/.test(row('watched')), 10_000, 'the last heartbeat to age on screen');
        expect(lastFrame()).toContain('… 5 more instances below the screen');
        expect(row('zz1')).toBe('');
        await runSvcmesh(['heartbeat', 'watched', '--registrar', own.url]);
        // Its age on screen drops: the new time came from /catalog, since heartbeats are no events.
        let age = ageOf(row('watched'));
        await waitFor(() => {
          const now = ageOf(row('watched'));
          if (!Number.isFinite(now)) return false; // a frame still being drawn
          const dropped = now < age;
          age = now;
          return dropped;
        }, 10_000, 'the heartbeat to show without an event');

        const failed = await fetch(`${own.url}/forward`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: 'gone', message: 'hi' }) });
        expect(failed.status).toBe(502);
        await waitFor(() => row('gone').includes('unreachable'), 10_000, 'the unreachable mark');
        expect(row('watched')).not.toContain('unreachable');

        session.stdin.write('\x03');
        expect(await exited).toBe(130);
      } finally {
        session.kill('SIGKILL');
        await own.stop();
      }
    });
  });
});

describe('a service name the registrar does not know', () => {
  it('suggests the registered names close to it, or lists what is registered, under the error', async () => {
    const own = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    try {
      const at = ['--registrar', own.url];
      const empty = await runSvcmesh(['ask', 'ollama_service', 'hi', ...at]);
      expect(empty.code).toBe(1);
      // Just started: its services may not have sent their next heartbeat yet.
      expect(empty.stderr).toMatch(new RegExp(`Nothing is registered at ${own.url} yet: it started \\d+ s ago, and services register again with their next heartbeat \\(or is that not the registrar you meant\\?\\)`));

      await runSvcmesh(['register', 'ollama_service', 'http://127.0.0.1:8090', ...at]);
      await runSvcmesh(['register', 'billing', 'http://127.0.0.1:8091', ...at]);
      // A typo, another case, the start of a name: one line under the error, the same for each command.
      for (const args of [
        ['ask', 'olama_service', 'hi'],
        ['ask', '--stream', 'OLLAMA_SERVICE', 'hi'],
        ['services', 'ollama'],
        ['heartbeat', 'ollama_servcie'],
        ['deregister', 'olama_service'],
      ]) {
        const result = await runSvcmesh([...args, ...at]);
        expect(result.code, args.join(' ')).toBe(1);
        expect(result.stderr, args.join(' ')).toMatch(/is not registered[^\n]*\n {2}Did you mean ollama_service\?\n$/);
      }
      // One instance of a name that is registered, at a URL it is not: the URLs it is at.
      const wrongUrl = await runSvcmesh(['deregister', 'billing', 'http://127.0.0.1:9999', ...at]);
      expect(wrongUrl.code).toBe(1);
      expect(wrongUrl.stderr).toContain('\n  billing is registered at http://127.0.0.1:8091: give one of those, or only the name to remove every instance\n');
      const wrongName = await runSvcmesh(['deregister', 'biling', 'http://127.0.0.1:8091', ...at]);
      expect(wrongName.stderr).toContain('\n  Did you mean billing?\n');
      // Nothing close: what is there, which shows a registrar other than the one meant.
      const far = await runSvcmesh(['ask', 'weather', 'hi', ...at]);
      expect(far.stderr).toContain(`Registered at ${own.url}: billing, ollama_service`);
      // The service is still there: the suggestion only ever offered.
      expect((await runSvcmesh(['services', '--json', ...at])).stdout).toContain('"ollama_service"');
    } finally {
      await own.stop();
    }
  });

  it('heartbeat NAME for a name the registrar does not know says, once, under the error, the commands that register it (not "again")', async () => {
    const result = await runSvcmesh(['heartbeat', 'never_registered_here', '--registrar', registrar.url]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^error \S+\/heartbeat answered 404: Service never_registered_here is not registered\n {2}Register it with `svcmesh register never_registered_here URL`, or send `svcmesh heartbeat never_registered_here --url URL`, which registers it\.\n/,
    );
    // The error and its advice; a line on what is registered there may follow.
    const [message, advice] = result.stderr.split('\n');
    expect(`${message}\n${advice}`).not.toContain('again');
    expect(`${message}\n${advice}`.match(/register it/gi)).toHaveLength(1);
  });

  it('heartbeat --url says when the registrar did not know the instance and the beat registered it', async () => {
    const at = ['--registrar', registrar.url];
    const first = await runSvcmesh(['heartbeat', 'beat_here', '--url', 'http://127.0.0.1:8097', ...at]);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe('Heartbeat received from beat_here\n');
    expect(first.stderr).toContain('The registrar did not know beat_here at http://127.0.0.1:8097: this heartbeat registered it');
    const second = await runSvcmesh(['heartbeat', 'beat_here', '--url', 'http://127.0.0.1:8097', ...at]);
    expect(second.stdout).toBe('Heartbeat received from beat_here\n');
    expect(second.stderr).toBe('');
  });

  it("adds nothing to a 404 that a registered instance answered itself", async () => {
    const target = createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"no /receive here"}');
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
      await runSvcmesh(['register', 'no_receive', url, '--registrar', registrar.url]);
      const result = await runSvcmesh(['ask', 'no_receive', 'hi', '--registrar', registrar.url]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('no /receive here');
      expect(result.stderr).not.toMatch(/Did you mean|Registered at|Nothing is registered/);
    } finally {
      target.close();
    }
  });
});

describe('a service name that can never be valid', () => {
  it('is refused with exit 2 before any request, by the rule the registrar applies', async () => {
    // Nothing listens here: a request that was sent would fail with exit 1, "Cannot reach".
    const nowhere = ['--registrar', `http://127.0.0.1:${await freePort()}`];
    for (const args of [
      ['register', 'bad name', 'http://127.0.0.1:8080'],
      ['register', '', 'http://127.0.0.1:8080'],
      ['register', '.dot-first', 'http://127.0.0.1:8080'],
      ['heartbeat', ''],
      ['deregister', 'a/b'],
      ['ask', 'bad name', 'hi'],
      ['services', 'x'.repeat(129)],
    ]) {
      const result = await runSvcmesh([...args, ...nowhere]);
      expect(result.code, JSON.stringify(args)).toBe(2);
      expect(result.stderr, JSON.stringify(args)).toContain('Expected a service name of 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit');
      expect(result.stderr, JSON.stringify(args)).not.toContain('Cannot reach');
    }
    // The longest name and every allowed character still go through.
    const fine = await runSvcmesh(['register', `a${'.-_9'.repeat(31)}xyz`, 'http://127.0.0.1:8080', '--registrar', registrar.url]);
    expect(fine.code, fine.stderr).toBe(0);
  });
});

describe('status', () => {
  it("shows the registrar's health for a person, the server's JSON for a script, exit 0 when ok", async () => {
    const own = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--ttl', '45']);
    await runSvcmesh(['register', 'status_web', 'http://127.0.0.1:8080', '--registrar', own.url]);
    const text = await runSvcmesh(['status', '--registrar', own.url]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^Registrar +${own.url}$`, 'm'));
    expect(text.stdout).toMatch(/^Status +ok$/m);
    expect(text.stdout).toMatch(/^Store +memory$/m);
    expect(text.stdout).toMatch(/^TTL +45 s$/m);
    expect(text.stdout).toMatch(/^Catalog +1 service, 1 instance$/m);
    expect(text.stdout).toMatch(/^Token +not required$/m);
    const json = await runSvcmesh(['status', '--json', '--registrar', own.url]);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'ok', store: 'memory', ttl_seconds: 45, services: 1, instances: 1 });
    await own.stop();
    const gone = await runSvcmesh(['status', '--registrar', own.url]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`Cannot reach ${own.url}/health`);
  });

  it('says whether the registrar wants a token and whether the one given is accepted; --token "" gives none', async () => {
    const guarded = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--token', 'status-secret']);
    const token = async (...args: string[]) => {
      const result = await runSvcmesh(['status', '--registrar', guarded.url, ...args], { env: { SVCMESH_TOKEN: 'status-secret' } });
      expect(result.code, result.stderr).toBe(0);
      return /^Token +(.*)$/m.exec(result.stdout)?.[1];
    };
    expect(await token()).toBe('required; yours is accepted');
    // `--token ""` sends none, whatever SVCMESH_TOKEN holds.
    expect(await token('--token', '')).toBe('required; none given');
    expect(await token('--token', 'guess')).toBe('required; yours is not accepted');
    await guarded.stop();
  });
});

/**
 * What a shell user has before pressing Tab: `names` registered at the shared registrar, `svcmesh`
 * on PATH (as after `npm i -g`: the scripts call it for the names) and the script `svcmesh
 * completion <shell>` printed.
 */
/** A registrar that protects its reads, with one name registered: completion needs the token on the line. */
async function guardedRegistrar(name: string): Promise<SvcmeshProcess> {
  const guarded = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--token', 'open-sesame', '--protect-reads']);
  await runSvcmesh(['register', name, 'http://127.0.0.1:8096', '--registrar', guarded.url, '--token', 'open-sesame']);
  return guarded;
}

/** Names complete at a registrar that protects its reads only with the token on the line, either spelling. */
async function expectGuardedNames(complete: (line: string) => Promise<Array<string | undefined>>): Promise<void> {
  const guarded = await guardedRegistrar('guarded_name');
  try {
    expect(await complete(`svcmesh ask --registrar ${guarded.url} guar`)).toEqual([]);
    expect(await complete(`svcmesh ask --registrar ${guarded.url} --token open-sesame guar`)).toEqual(['guarded_name']);
    expect(await complete(`svcmesh ask --registrar=${guarded.url} --token=open-sesame guar`)).toEqual(['guarded_name']);
  } finally {
    await guarded.stop();
  }
}

async function completionSetup(shell: string, names: Array<[string, string]>): Promise<{ pathDir: string; script: string }> {
  for (const [name, url] of names) await runSvcmesh(['register', name, url, '--registrar', registrar.url]);
  const pathDir = tempDir('svcmesh-path-');
  writeFileSync(path.join(pathDir, 'svcmesh'), `#!/bin/sh\nexec '${process.execPath}' '${binPath}' "$@"\n`);
  chmodSync(path.join(pathDir, 'svcmesh'), 0o755);
  const printed = await runSvcmesh(['completion', shell]);
  expect(printed.code).toBe(0);
  return { pathDir, script: printed.stdout };
}

describe('shell completion (bash)', () => {
  /** What bash offers on Tab at the end of `line`, with the script `svcmesh completion bash` printed. */
  async function completions(scriptFile: string, pathDir: string, line: string): Promise<string[]> {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        'bash',
        ['-c', 'source "$0"; COMP_LINE="$1"; COMP_POINT=${#1}; _svcmesh; printf "%s\\n" "${COMPREPLY[@]}"', scriptFile, line],
        { env: { PATH: `${pathDir}:${process.env.PATH}`, HOME: process.env.HOME, SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') }, timeout: 15_000 },
        (error, out) => (error ? reject(error) : resolve(out)),
      );
    });
    return stdout.split('\n').filter(Boolean);
  }

  it('completes commands, options, option choices, config keys and registered service names', async () => {
    const { pathDir, script } = await completionSetup('bash', [
      ['complete_me', 'http://127.0.0.1:8080'],
      ['compass', 'http://127.0.0.1:8081'],
    ]);
    const scriptFile = path.join(tempDir('svcmesh-completion-'), 'svcmesh.bash');
    writeFileSync(scriptFile, script);
    const tab = (line: string) => completions(scriptFile, pathDir, line);

    expect(await tab('svcmesh as')).toEqual(['ask']);
    expect(await tab('svcmesh help as')).toEqual(['ask']);
    expect(await tab('svcmesh help ')).toEqual(['registrar', 'ollama', 'services', 'status', 'heartbeat', 'register', 'deregister', 'ask', 'config', 'completion', 'version']);
    expect(await tab('svcmesh ask --st')).toEqual(['--stream']);
    expect(await tab('svcmesh registrar --log-format ')).toEqual(['text', 'json']);
    expect(await tab('svcmesh config set re')).toEqual(['registrar']);
    // A subcommand's own options.
    expect(await tab('svcmesh config list --')).toEqual(['--json', '--show-secrets', '--help']);
    expect(await tab('svcmesh config get --')).toEqual(['--help']);
    // Names from the registrar named on the line; its URL's colons do not confuse the count.
    expect((await tab(`svcmesh ask --registrar ${registrar.url} comp`)).sort()).toEqual(['compass', 'complete_me']);
    expect(await tab(`svcmesh heartbeat --registrar ${registrar.url} complete_`)).toEqual(['complete_me']);
    // After the name comes the message: nothing to offer; nor when the registrar is away.
    expect(await tab(`svcmesh ask --registrar ${registrar.url} compass `)).toEqual([]);
    expect(await tab(`svcmesh ask --registrar http://127.0.0.1:${await freePort()} comp`)).toEqual([]);
    // The --registrar=URL spelling; and a registrar that protects its reads, with the token on the line.
    expect(await tab(`svcmesh ask --registrar=http://127.0.0.1:${await freePort()} comp`)).toEqual([]);
    await expectGuardedNames(tab);
  });
});

describeIfInstalled('shell completion (zsh)', spawnSync('zsh', ['--version']).status === 0, 'zsh (Debian: zsh) is needed to complete in it', () => {
  it('completes commands, option values and registered service names at a real zsh prompt', async () => {
    const { pathDir, script } = await completionSetup('zsh', [
      ['zcompass', 'http://127.0.0.1:8082'],
      ['zcomplete_me', 'http://127.0.0.1:8083'],
    ]);
    const scriptFile = path.join(tempDir('svcmesh-completion-'), '_svcmesh');
    writeFileSync(scriptFile, script);

    /** An interactive zsh on a pseudo-terminal, after `setup` (what ~/.zshrc would hold). */
    const zsh = async (setup: string) => {
      const session = spawn('script', ['-qfec', 'exec zsh -f -i', '/dev/null'], {
        env: { PATH: `${pathDir}:${process.env.PATH}`, HOME: tempDir('svcmesh-home-'), TERM: 'dumb', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') },
      });
      let screen = '';
      session.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
      session.stdin.write(`${setup} && PS1='%% ' && echo ready\n`);
      await waitFor(() => /^ready/m.test(screen), 10_000, 'zsh to load the script');
      return {
        /** Types `line` and Tab on an empty prompt line; resolves with what zsh then drew. */
        async tab(line: string, expected: RegExp) {
          screen = '';
          session.stdin.write(`\x15${line}\t`); // Ctrl-U: the previous line's leftovers go first
          await waitFor(() => expected.test(screen), 10_000, `zsh to complete ${JSON.stringify(line)}`);
          return screen;
        },
        stop: () => session.kill('SIGKILL'),
      };
    };

    // Sourced after compinit.
    const sourced = await zsh(`autoload -U compinit && compinit -u -D && source '${scriptFile}'`);
    try {
      // One candidate: written out on the line.
      await sourced.tab('svcmesh as', /svcmesh ask $/);
      await sourced.tab('svcmesh help as', /svcmesh help ask $/);
      await sourced.tab('svcmesh help co', /completion +config/);
      await sourced.tab('svcmesh ask --st', /svcmesh ask --stream $/);
      await sourced.tab('svcmesh config list --sh', /svcmesh config list --show-secrets $/);
      // Several: listed under the line.
      await sourced.tab('svcmesh registrar --log-format ', /json +text/);
      await sourced.tab('svcmesh config set re', /svcmesh config set registrar $/);
      // Names from the registrar named on the line, only those that fit what is typed.
      const names = await sourced.tab(`svcmesh ask --registrar ${registrar.url} zcomp`, /zcompass +zcomplete_me/);
      expect(names).not.toMatch(/(^|\s)compass\b/); // registered too, but it does not start with zcomp
      await sourced.tab(`svcmesh heartbeat --registrar ${registrar.url} zcomplete`, /svcmesh heartbeat --registrar \S+ zcomplete_me $/);
      // The --registrar=URL spelling, and the token on the line for a registrar that protects its reads.
      const guarded = await guardedRegistrar('zguarded_name');
      try {
        // A long line: zsh scrolls it sideways on an 80-column terminal, so only its end shows.
        await sourced.tab(`svcmesh ask --registrar=${guarded.url} --token=open-sesame zguar`, /--token=open-sesame zguarded_name /);
      } finally {
        await guarded.stop();
      }
    } finally {
      sourced.stop();
    }
    // Saved as _svcmesh in a directory of $fpath: autoloaded on the first Tab, which completes too.
    const autoloaded = await zsh(`fpath=('${path.dirname(scriptFile)}' $fpath) && autoload -U compinit && compinit -u -D`);
    try {
      await autoloaded.tab('svcmesh as', /svcmesh ask $/);
      await autoloaded.tab('svcmesh completion ', /bash +fish +zsh/);
    } finally {
      autoloaded.stop();
    }
  });
});

describeIfInstalled('shell completion (fish)', spawnSync('fish', ['--version']).status === 0, 'fish (Debian: fish) is needed to complete in it', () => {
  it('completes commands and options with their descriptions, config keys and registered service names', async () => {
    const { pathDir, script } = await completionSetup('fish', [
      ['fcompass', 'http://127.0.0.1:8084'],
      ['fcomplete_me', 'http://127.0.0.1:8085'],
    ]);
    // Where fish looks for it by itself: ~/.config/fish/completions/svcmesh.fish.
    const home = tempDir('svcmesh-home-');
    mkdirSync(path.join(home, '.config', 'fish', 'completions'), { recursive: true });
    writeFileSync(path.join(home, '.config', 'fish', 'completions', 'svcmesh.fish'), script);

    /** What fish offers on Tab at the end of `line` (`complete -C`): value, and description when there is one. */
    const tab = (line: string) =>
      new Promise<string[][]>((resolve, reject) => {
        execFile(
          'fish',
          ['--no-config', '-c', 'set fish_complete_path ~/.config/fish/completions $fish_complete_path; complete -C $argv[1]', line],
          { env: { PATH: `${pathDir}:${process.env.PATH}`, HOME: home, SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') }, timeout: 15_000 },
          (error, out) => (error ? reject(error) : resolve(out.split('\n').filter(Boolean).map((l) => l.split('\t')))),
        );
      });
    const values = async (line: string) => (await tab(line)).map(([value]) => value);

    expect(await tab('svcmesh as')).toEqual([['ask', 'send a message to a service through the registrar and print its answer']]);
    expect(await tab('svcmesh ask --st')).toEqual([['--stream', 'print the answer as it is produced']]);
    expect(await values('svcmesh registrar --log-format ')).toEqual(['json', 'text']);
    // A value is expected after --registrar: neither files nor names.
    expect(await values('svcmesh ask --registrar ')).toEqual([]);
    expect(await values('svcmesh config ')).toEqual(['get', 'list', 'path', 'set', 'unset']);
    expect(await tab('svcmesh config set re')).toEqual([['registrar', 'registrar URL used by client commands']]);
    expect(await values('svcmesh config list --sh')).toEqual(['--show-secrets']);
    expect(await values('svcmesh completion ')).toEqual(['bash', 'fish', 'zsh']);
    // Names from the registrar named on the line, either spelling of the option.
    expect(await values(`svcmesh ask --registrar ${registrar.url} fcomp`)).toEqual(['fcompass', 'fcomplete_me']);
    expect(await values(`svcmesh heartbeat --registrar=${registrar.url} fcomplete`)).toEqual(['fcomplete_me']);
    // After the name comes the message: nothing to offer; nor when the registrar is away.
    expect(await values(`svcmesh ask --registrar ${registrar.url} fcompass `)).toEqual([]);
    expect(await values(`svcmesh ask --registrar http://127.0.0.1:${await freePort()} fcomp`)).toEqual([]);
    await expectGuardedNames(values);
  });
});

describe('register --keep-alive: a sidecar for a service that does not heartbeat itself', () => {
  let shortTtl: SvcmeshProcess;
  beforeAll(async () => {
    shortTtl = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--ttl', '2']);
  });

  interface InstanceJson {
    url: string;
    registered_at: string;
  }
  const instancesOf = async (registrarUrl: string, name: string): Promise<InstanceJson[]> => {
    const response = await fetch(`${registrarUrl}/services/${name}`);
    return response.status === 404 ? [] : ((await response.json()) as { instances: InstanceJson[] }).instances;
  };

  it('keeps the instance registered past several TTLs by itself, and SIGTERM deregisters it', async () => {
    const keeper = spawnSvcmesh(['register', 'sidecar_web', 'http://127.0.0.1:8080', '--keep-alive', '--registrar', shortTtl.url]);
    await waitFor(() => keeper.stdout().includes('Heartbeat every'), 10_000, 'registration');
    // No --heartbeat-interval: the default 120 s would be evicted here; a third of the TTL is not.
    expect(keeper.stdout()).toContain('Service sidecar_web registered at http://127.0.0.1:8080');
    const [first] = await instancesOf(shortTtl.url, 'sidecar_web');
    expect(first?.url).toBe('http://127.0.0.1:8080');
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    // The same registration, renewed: never evicted and registered again in between.
    expect(await instancesOf(shortTtl.url, 'sidecar_web')).toEqual([expect.objectContaining({ registered_at: first!.registered_at })]);

    keeper.child.kill('SIGTERM');
    expect((await keeper.exited).code, keeper.stderr()).toBe(0);
    expect(keeper.stdout()).toContain('Service sidecar_web deregistered (1 instance)');
    expect(await instancesOf(shortTtl.url, 'sidecar_web')).toEqual([]);
  });

  it('with --check-path, takes an instance whose service fails its check out of the registry, and back when it passes', async () => {
    let healthy = true;
    const service = createServer((req, res) => {
      res.writeHead(req.url === '/health' && healthy ? 200 : 503).end();
    });
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(service.address() as AddressInfo).port}`;
    // The main registrar's TTL is 300 s: an instance gone within seconds was taken out by the check.
    const keeper = spawnSvcmesh(['register', 'checked_web', url, '--keep-alive', '--check-path', '/health', '--heartbeat-interval', '1', '--registrar', registrar.url]);
    try {
      await waitFor(async () => (await instancesOf(registrar.url, 'checked_web')).length === 1, 10_000, 'the registration');
      healthy = false;
      await waitFor(async () => (await instancesOf(registrar.url, 'checked_web')).length === 0, 10_000, 'the instance taken out');
      expect(keeper.stderr()).toContain(`checked_web at ${url} fails its check (GET ${url}/health answered 503)`);
      healthy = true;
      await waitFor(async () => (await instancesOf(registrar.url, 'checked_web')).length === 1, 10_000, 'the instance back');
      expect(keeper.stdout()).toContain(`checked_web at ${url} passes its check again`);
      keeper.child.kill('SIGTERM');
      expect((await keeper.exited).code).toBe(0);
      expect(await instancesOf(registrar.url, 'checked_web')).toEqual([]);
    } finally {
      keeper.child.kill('SIGKILL');
      await new Promise((resolve) => service.close(resolve));
    }
  });

  it('warns when the interval given cannot keep up with the TTL', async () => {
    const keeper = spawnSvcmesh(['register', 'slow_web', 'http://127.0.0.1:8081', '--keep-alive', '--heartbeat-interval', '5', '--registrar', shortTtl.url]);
    await waitFor(() => keeper.stderr().includes('TTL'), 10_000, 'the warning');
    expect(keeper.stderr()).toContain("--heartbeat-interval 5 s is not shorter than the registrar's TTL of 2 s");
    keeper.child.kill('SIGINT');
    expect((await keeper.exited).code).toBe(0);
  });

  /** The exit, or null when it has not come within `ms`: a stop that hangs fails the test rather than timing it out. */
  const exitWithin = (keeper: ReturnType<typeof spawnSvcmesh>, ms: number) =>
    Promise.race([keeper.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), ms).unref())]);

  it('Ctrl-C while the registration is still unanswered quits at once, exit 0, deregistering nothing it never registered', async () => {
    // A registrar that takes the connection and never answers: the registration hangs for its 10 s bound.
    const hung = await startSilentServer();
    try {
      const keeper = spawnSvcmesh(['register', 'never_in', 'http://127.0.0.1:8082', '--keep-alive', '--registrar', hung.url]);
      await waitFor(() => hung.received().includes('POST /register'), 10_000, 'the registration under way');
      keeper.child.kill('SIGINT');
      // It used to wait out the registration (10 s), then a deregistration (10 s more).
      const exit = await exitWithin(keeper, 8_000);
      keeper.child.kill('SIGKILL');
      expect(exit, `still running; stderr: ${keeper.stderr()}`).not.toBeNull();
      expect(exit!.code, keeper.stderr()).toBe(0);
      expect(hung.received()).not.toContain('/deregister');
      expect(keeper.stderr()).not.toMatch(/deregister|may stay registered|failed/i);
    } finally {
      await hung.close();
    }
  });

  it('Ctrl-C when the registrar no longer answers the deregistration: exit 1, saying the instance may stay until its TTL runs out', async () => {
    const stopped = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    let paused = false;
    try {
      const keeper = spawnSvcmesh(['register', 'left_behind', 'http://127.0.0.1:8083', '--keep-alive', '--timeout', '2', '--registrar', stopped.url]);
      await waitFor(() => keeper.stdout().includes('Heartbeat every'), 10_000, 'registration');
      process.kill(stopped.pid, 'SIGSTOP');
      paused = true;
      keeper.child.kill('SIGINT');
      const exit = await exitWithin(keeper, 8_000);
      keeper.child.kill('SIGKILL');
      expect(exit, `still running; stderr: ${keeper.stderr()}`).not.toBeNull();
      expect(exit!.code).toBe(1);
      expect(keeper.stderr()).toContain(`Could not deregister left_behind at http://127.0.0.1:8083 from ${stopped.url}`);
      // Not "stays": resumed, the registrar still reads the deregistration it was sent.
      expect(keeper.stderr()).toContain("It may stay registered there until the registrar's TTL evicts it");
    } finally {
      if (paused) process.kill(stopped.pid, 'SIGCONT');
      await stopped.stop();
    }
  });

  it('gives up with exit 1 when the registrar refuses the registration (wrong token)', async () => {
    const guarded = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1', '--token', 'right']);
    const result = await runSvcmesh(['register', 'web', 'http://127.0.0.1:8080', '--keep-alive', '--token', 'wrong', '--registrar', guarded.url], { timeoutMs: 10_000 });
    expect(result.timedOut).toBe(false);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('401');
    await guarded.stop();
  });
});

describe('the Ollama service from the command line', () => {
  let ollama: FakeOllama;
  beforeAll(async () => {
    ollama = await startFakeOllama({ models: ['llama3.2:latest'] });
  });
  afterAll(async () => {
    await ollama?.close();
  });

  it('reports a missing model with the pull command, through ask', async () => {
    const service = await startSvcmesh([
      'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', ollama.host, '--model', 'mistral',
      '--name', 'mistral_service', '--register', '--registrar', registrar.url,
    ]);
    await waitFor(() => service.output().includes('registered at'), 10_000, 'registration');
    const result = await runSvcmesh(['ask', 'mistral_service', 'hi', '--registrar', registrar.url]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ollama pull mistral');
    const health = await fetch(`${service.url}/health`);
    expect(health.status).toBe(503);
    // Said at start-up already, once, in the words of /health.
    await waitFor(() => service.output().includes('warning'), 10_000, 'the start-up warning');
    expect(service.output()).toContain(`warning Model mistral is not available in Ollama at ${ollama.host}: run \`ollama pull mistral\``);
    expect(service.output().match(/warning/g)).toHaveLength(1);
    await service.stop();
  });

  it('warns once at start-up that Ollama is not reachable, after listening, and still registers', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const service = await startSvcmesh([
      'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', closed, '--name', 'early_service', '--register', '--registrar', registrar.url,
    ]);
    await waitFor(() => service.output().includes('registered at') && service.output().includes('warning'), 10_000, 'registration and the warning');
    const output = service.output();
    expect(output).toContain(`warning Ollama is not reachable at ${closed}: ECONNREFUSED. Start it with \`ollama serve\``);
    expect(output.match(/warning/g)).toHaveLength(1);
    expect(output.indexOf('listening on')).toBeLessThan(output.indexOf('warning'));
    expect(await service.stop()).toEqual({ code: 0, signal: null });
  });

  it('refuses a bad --name, a --model that is no model name, an Ollama host that is none, a registrar URL that is none and registration options without --register: exit 2, before listening', async () => {
    const example = 'such as 127.0.0.1:11434, :11434 or http://ollama.internal:11434';
    const cases: Array<[string[], Record<string, string>, string[]]> = [
      [['--name', 'ollama service'], {}, ['--name "ollama service" must be 1-128 letters, digits']],
      [['--model', ''], {}, ['--model is empty']],
      [['--model', 'bad model!'], {}, ['--model "bad model!" is not a model name Ollama takes']],
      [[], { OLLAMA_MODEL: 'llama3.2; rm' }, ['OLLAMA_MODEL "llama3.2; rm" is not a model name Ollama takes']],
      // Without --register these would be ignored, and the service silently never registered.
      [['--registrar', 'http://127.0.0.1:5001'], {}, ['--registrar only applies with --register: add --register']],
      [['--heartbeat-interval', '5'], {}, ['--heartbeat-interval only applies with --register']],
      [['--advertise-url', 'http://10.0.0.5:5000'], {}, ['--advertise-url only applies with --register']],
      [['--ollama-host', 'http://bad host'], {}, ['--ollama-host "http://bad host" is not a host, host:port or URL', example]],
      [['--ollama-host', 'ftp://x'], {}, ['--ollama-host "ftp://x" uses ftp:, but Ollama answers over http or https', example]],
      [[], { OLLAMA_HOST: 'http://bad host' }, ['OLLAMA_HOST "http://bad host" is not a host, host:port or URL', example]],
      [['--register'], { SVCMESH_REGISTRAR: 'garbage' }, ['The registrar URL "garbage" is not an http(s) URL']],
    ];
    for (const [args, env, said] of cases) {
      const result = await runSvcmesh(['ollama', '--port', '0', '--host', '127.0.0.1', ...args], { env, timeoutMs: 4_000 });
      expect(result.code, args.join(' ') || JSON.stringify(env)).toBe(2);
      expect(result.stdout).toBe('');
      for (const words of said) expect(result.stderr).toContain(words);
    }
  });

  it('takes OLLAMA_HOST and OLLAMA_MODEL set but empty as the defaults, as the Ollama CLI does', async () => {
    const service = await startSvcmesh(['ollama', '--port', '0', '--host', '127.0.0.1'], { env: { OLLAMA_HOST: '', OLLAMA_MODEL: '' } });
    expect(service.output()).toContain('(model: llama3.2, ollama: http://127.0.0.1:11434)');
    expect(await service.stop()).toEqual({ code: 0, signal: null });
  });

  it('asks with the message piped on standard input, like ollama run', async () => {
    const service = await startSvcmesh([
      'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', ollama.host, '--model', 'llama3.2',
      '--name', 'piped_service', '--register', '--registrar', registrar.url,
    ]);
    await waitFor(() => service.output().includes('registered at'), 10_000, 'registration');
    const question = 'Summarise these notes:\n- one\n- two';
    const piped = await runSvcmesh(['ask', 'piped_service', '--registrar', registrar.url], { input: `${question}\n` });
    expect(piped, piped.stderr).toMatchObject({ code: 0, stdout: `Answer to: ${question}\n` });
    const dash = await runSvcmesh(['ask', 'piped_service', '-', '--stream', '--registrar', registrar.url], { input: question });
    expect(dash, dash.stderr).toMatchObject({ code: 0, stdout: `Answer to: ${question}\n` });
    // Words on the command line win: standard input is not even read.
    const words = await runSvcmesh(['ask', 'piped_service', 'just', 'this', '--registrar', registrar.url], { input: 'not this' });
    expect(words.stdout).toBe('Answer to: just this\n');
    await service.stop();
  });

  it('refuses an empty or oversized piped message with exit 2, before contacting the registrar', async () => {
    // Nothing listens here: a message that was sent would fail with exit 1 instead.
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const empty = await runSvcmesh(['ask', 'ollama_service', '--registrar', nowhere], { input: '\n' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('standard input held no message');
    const huge = await runSvcmesh(['ask', 'ollama_service', '-', '--registrar', nowhere], { input: 'a'.repeat(1024 * 1024 + 1) });
    expect(huge.code).toBe(2);
    expect(huge.stderr).toContain('over 1 MiB');
  });

  describeIfInstalled('ask at a terminal', spawnSync('script', ['--version']).status === 0, 'util-linux `script` (Debian: bsdutils) is needed to give ask a terminal', () => {
    it('prompts like ollama run: answers in context, /clear forgets, Ctrl-C stops an answer, errors do not end it, /bye leaves', async () => {
      const service = await startSvcmesh([
        'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', ollama.host, '--model', 'llama3.2',
        '--name', 'terminal_service', '--register', '--registrar', registrar.url,
      ]);
      await waitFor(() => service.output().includes('registered at'), 10_000, 'registration');
      // `script` runs ask on a pseudo-terminal, as a person at a shell would. `exec`: the terminal's
      // Ctrl-C must reach ask alone, not a shell in between (dash, CI's /bin/sh, dies of it).
      const command = `exec '${process.execPath}' '${binPath}' ask terminal_service --registrar ${registrar.url}`;
      const session = spawn('script', ['-qfec', command, '/dev/null'], {
        env: { ...process.env, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') },
      });
      let screen = '';
      session.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => session.once('close', (code) => resolve(code)));
      const prompts = () => screen.split('>>> ').length - 1;
      const chatAbout = (question: string) => ollama.stats.chats.filter((chat) => chat.messages.at(-1)?.content === question).at(-1);
      const ask = async (question: string, promptsBefore: number) => {
        session.stdin.write(`${question}\r`);
        await waitFor(() => screen.includes(`Answer to: ${question}`) && prompts() > promptsBefore, 10_000, `the answer to ${question}, then a prompt`);
      };
      try {
        await waitFor(() => prompts() >= 1, 10_000, 'the first prompt');
        expect(screen).toContain('/clear forgets the conversation');

        await ask('My name is Ada.', 1);
        await ask('What is my name?', 2);
        // The second question went with the first exchange, as `ollama run` keeps a conversation.
        expect(chatAbout('What is my name?')?.messages).toEqual([
          { role: 'user', content: 'My name is Ada.' },
          { role: 'assistant', content: 'Answer to: My name is Ada.' },
          { role: 'user', content: 'What is my name?' },
        ]);
        // A message of several lines, between triple quotes as in `ollama run`.
        // The blank line after the opening quotes goes; the indentation of the first line stays.
        session.stdin.write('"""\r');
        await waitFor(() => screen.includes('... '), 10_000, 'the continuation prompt');
        session.stdin.write('  indented: first line\r');
        session.stdin.write('second line"""\r');
        await waitFor(() => chatAbout('  indented: first line\nsecond line')?.status === 'completed' && prompts() >= 4, 10_000, 'the answer to two lines');

        session.stdin.write('/clear\r');
        await waitFor(() => screen.includes('Conversation forgotten.') && prompts() >= 5, 10_000, '/clear');
        await ask('Who am I?', 5);
        expect(chatAbout('Who am I?')?.messages).toEqual([{ role: 'user', content: 'Who am I?' }]);

        ollama.config.tokenDelayMs = 300;
        const abortedBefore = ollama.stats.aborted;
        session.stdin.write('tell me a long story\r');
        await waitFor(() => screen.split('Answer to:').length - 1 >= 5, 10_000, 'the first words of the long answer');
        session.stdin.write('\x03');
        await waitFor(() => ollama.stats.aborted > abortedBefore, 10_000, 'Ollama told to stop');
        await waitFor(() => prompts() >= 7, 10_000, 'a prompt after Ctrl-C');
        expect(screen).not.toContain('Answer to: tell me a long story');
        // While the first words were awaited (300 ms), a spinner said so, on stderr.
        expect(screen).toContain('terminal_service is answering…');

        // The same wait without --stream, at a terminal: the spinner, then the answer alone on its line.
        const oneShot = await new Promise<string>((resolve, reject) => {
          execFile('script', ['-qfec', `exec '${process.execPath}' '${binPath}' ask terminal_service slow one --registrar ${registrar.url}`, '/dev/null'], {
            env: { ...process.env, NO_COLOR: '1', SVCMESH_CONFIG_DIR: tempDir('svcmesh-config-') },
            timeout: 15_000,
          }, (error, out) => (error ? reject(error) : resolve(out)));
        });
        expect(oneShot).toContain('terminal_service is answering…');
        expect(oneShot).toMatch(/\r\x1b\[KAnswer to: slow one\r?\n/);
        ollama.config.tokenDelayMs = 0;

        // Ctrl-C at the prompt drops what was typed: the Enter after it sends nothing.
        const chatsBefore = ollama.stats.chats.length;
        session.stdin.write('half a thought');
        await waitFor(() => screen.includes('half a thought'), 10_000, 'the typed words echoed');
        const leave = screen.split('Use Ctrl-D or /bye to leave.').length;
        session.stdin.write('\x03');
        await waitFor(() => screen.split('Use Ctrl-D or /bye to leave.').length > leave, 10_000, 'Ctrl-C at the prompt');
        let before = prompts();
        session.stdin.write('\r');
        await waitFor(() => prompts() > before, 10_000, 'a prompt after an empty line');
        // A mistyped command is not a question; /? lists the commands.
        session.stdin.write('/cler\r');
        await waitFor(() => screen.includes('Unknown command /cler: type /? for the commands'), 10_000, 'the unknown command');
        session.stdin.write('/?\r');
        await waitFor(() => screen.includes('/bye, /exit'), 10_000, 'the help');
        expect(ollama.stats.chats.length).toBe(chatsBefore);

        await service.stop();
        before = prompts();
        session.stdin.write('anyone there?\r');
        await waitFor(() => /terminal_service is not registered/.test(screen) && prompts() > before, 10_000, 'a prompt after the error');
        expect(screen).toMatch(/error .*terminal_service is not registered/);
        // With the same hint under it as a one-off ask gets (what the registrar has instead).
        expect(screen).toMatch(/terminal_service is not registered[^\n]*\r?\n {2}(Did you mean|Registered at|Nothing is registered at) /);

        session.stdin.write('/exit\r');
        expect(await exited).toBe(0);
      } finally {
        ollama.config.tokenDelayMs = 0;
        session.kill('SIGKILL');
      }
    });
  });

  it('reports Ollama unreachable, naming the host', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const service = await startSvcmesh(['ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', closed]);
    const response = await fetch(`${service.url}/receive`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'test', message: 'hi' }),
    });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: string }).error).toContain(`Ollama is not reachable at ${closed}`);
    await service.stop();
  });

  it('reads OLLAMA_HOST and OLLAMA_MODEL like the Ollama CLI', async () => {
    const service = await startSvcmesh(['ollama', '--port', '0', '--host', '127.0.0.1'], {
      env: { OLLAMA_HOST: `:${ollama.port}`, OLLAMA_MODEL: 'llama3.2' },
    });
    expect(service.output()).toContain(`ollama: http://127.0.0.1:${ollama.port}`);
    const health = await fetch(`${service.url}/health`);
    expect(health.status).toBe(200);
    await service.stop();
  });
});

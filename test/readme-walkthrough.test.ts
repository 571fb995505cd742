/**
 * Replays every command of the README's walk-through against real processes — the built
 * registrar and Ollama service, a fake Ollama behind them — and compares the output with the
 * README's. The README's default ports are swapped for the ports the test got.
 */
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from './support/fake-ollama.js';
import { binPath, repoRoot, type SvcmeshProcess, startSvcmesh, stopAll, tempDir, removeTempDirs, waitFor } from './support/processes.js';

interface Example {
  command: string;
  expected: string[];
}

/** The `$ command` lines of the walk-through's console blocks, each with the lines it prints. */
function walkthroughExamples(): Example[] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.split('<!-- walkthrough:start -->')[1]?.split('<!-- walkthrough:end -->')[0] ?? '';
  const examples: Example[] = [];
  for (const block of section.matchAll(/```console\n([\s\S]*?)```/g)) {
    for (const line of (block[1] ?? '').split('\n')) {
      if (line.startsWith('$ ')) examples.push({ command: line.slice(2), expected: [] });
      else if (line !== '') examples.at(-1)?.expected.push(line);
    }
  }
  return examples;
}

/**
 * `...` in the README stands for text that changes between runs; table columns may be wider or
 * narrower than shown, since the test's port numbers are longer than the README's.
 */
function matches(actual: string, expected: string): boolean {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const pattern = expected
    .split('...')
    .map((part) => part.split(/ {2,}/).map(escape).join(' {2,}'))
    .join('.*');
  return new RegExp(`^${pattern}$`).test(actual);
}

const ANSWERS: Record<string, string> = {
  'What is AI?': 'Artificial Intelligence (AI) is the simulation of human intelligence by machines.',
  'Capital of India?': 'The capital of India is New Delhi.',
};

describe('README walk-through', () => {
  let ollama: FakeOllama;
  let registrar: SvcmeshProcess;
  let service: SvcmeshProcess;
  let pathDir: string;
  let configDir: string;
  const portOf = (url: string) => new URL(url).port;

  beforeAll(async () => {
    ollama = await startFakeOllama({
      reply: (messages) => ANSWERS[messages.at(-1)?.content ?? ''] ?? 'I do not know.',
      tokenDelayMs: 2,
    });
    registrar = await startSvcmesh(['registrar', '--port', '0', '--host', '127.0.0.1']);
    service = await startSvcmesh([
      'ollama', '--port', '0', '--host', '127.0.0.1', '--ollama-host', ollama.host, '--model', 'llama3.2',
      '--register', '--registrar', registrar.url,
    ]);
    await waitFor(() => service.output().includes(`Service ollama_service registered at ${service.url}`), 10_000, 'registration');
    // `svcmesh` on PATH, as after `npm i -g`.
    pathDir = tempDir('svcmesh-path-');
    writeFileSync(join(pathDir, 'svcmesh'), `#!/bin/sh\nexec node ${binPath} "$@"\n`);
    chmodSync(join(pathDir, 'svcmesh'), 0o755);
    configDir = tempDir('svcmesh-config-');
  });

  afterAll(async () => {
    await stopAll();
    await ollama?.close();
    removeTempDirs();
  });

  const examples = walkthroughExamples();

  it('has examples to replay', () => {
    expect(examples.length).toBeGreaterThanOrEqual(10);
  });

  for (const [index, example] of examples.entries()) {
    it(`${index + 1}: ${example.command}`, async () => {
      const swap = (text: string) =>
        text.replaceAll('127.0.0.1:5001', `127.0.0.1:${portOf(registrar.url)}`).replaceAll('127.0.0.1:5000', `127.0.0.1:${portOf(service.url)}`);
      const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
        execFile(
          'bash',
          ['-c', `exec 2>&1\n${swap(example.command)}`],
          {
            env: {
              PATH: `${pathDir}:${process.env.PATH}`,
              HOME: process.env.HOME,
              NO_COLOR: '1',
              SVCMESH_CONFIG_DIR: configDir,
              SVCMESH_REGISTRAR: registrar.url,
            },
            timeout: 15_000,
          },
          (_error, stdout, stderr) => resolve({ stdout, stderr }),
        );
      });
      const actual = `${stdout}${stderr}`.trimEnd().split('\n');
      const expected = example.expected.map(swap);
      expect(actual.length, `output was:\n${actual.join('\n')}`).toBe(expected.length);
      for (const [i, line] of expected.entries()) {
        expect(matches(actual[i] ?? '', line), `line ${i + 1}\n  got:      ${actual[i]}\n  expected: ${line}`).toBe(true);
      }
    });
  }
});

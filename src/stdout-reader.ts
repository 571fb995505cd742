/**
 * `svcmesh services | head -2`: once head has what it wants it leaves, and the next write to
 * stdout fails with EPIPE. Node ignores SIGPIPE, so unhandled that error is a stack trace and
 * exit 1; a program that dies of SIGPIPE (kubectl, etcdctl) just stops. Here the error is
 * swallowed and this signal aborts, so a command still working (a streamed answer, a watch)
 * stops too: its request ends, and the registrar cancels the answer upstream.
 */
const readerGone = new AbortController();

/** Aborted when whoever read stdout has gone away: nothing printed from then on can be read. */
export const stdoutReaderGone: AbortSignal = readerGone.signal;

export function watchStdoutReader(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      readerGone.abort();
      return;
    }
    // A full disk (`services --watch --json > log`), an I/O error: nothing more can be printed,
    // so say why on stderr and stop, rather than dump a stack trace.
    process.stderr.write(`error cannot write to standard output: ${error.message}\n`);
    process.exit(1);
  });
}

/** `controller` aborts too when stdout's reader goes away. */
export function abortWhenReaderGoes(controller: AbortController): void {
  if (stdoutReaderGone.aborted) controller.abort();
  else stdoutReaderGone.addEventListener('abort', () => controller.abort(), { once: true });
}

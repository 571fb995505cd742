import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Holds `<file>.lock` while a registrar keeps its catalog in `<file>`: two registrars on one file
 * would each overwrite the other's saves, and a registration one of them answered 200 for would
 * be lost. The lock says who holds it (`pid@host`); one left by a registrar that died (kill -9)
 * is taken over, as its process is gone. Returns the release.
 */
export function lockCatalogFile(file: string, refuse: (message: string) => Error): () => void {
  const lockPath = `${file}.lock`;
  const mine = `${process.pid}@${hostname()}`;
  // Bounded: a lock found stale is removed once, and then either taken or held by someone else.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx');
      try {
        writeSync(fd, `${mine}\n`);
      } finally {
        closeSync(fd);
      }
      return () => release(lockPath, mine);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw refuse(`Cannot lock the catalog file ${file} (${lockPath}): ${(error as Error).message}`);
      }
    }
    const holder = readHolder(lockPath);
    if (holder && holderIsAlive(holder)) {
      throw refuse(
        `The catalog file ${file} is in use by another registrar (${holder.pid} on ${holder.host}, per ${lockPath}): stop that one, or give this one another --store file:PATH. If it is gone, delete ${lockPath}`,
      );
    }
    try {
      unlinkSync(lockPath);
    } catch {
      // Another registrar starting at this moment took it over first: the next attempt says so.
    }
  }
  throw refuse(`Cannot lock the catalog file ${file}: another registrar is starting on it at the same moment`);
}

interface Holder {
  pid: number;
  host: string;
}

function readHolder(lockPath: string): Holder | undefined {
  let text: string;
  try {
    text = readFileSync(lockPath, 'utf8').trim();
  } catch {
    return undefined;
  }
  const match = /^(\d+)@(.+)$/.exec(text);
  return match ? { pid: Number(match[1]), host: match[2]! } : undefined;
}

/**
 * Whether the lock's holder still runs. On another host that cannot be told from here: it is
 * taken as running. This process's own pid is a lock left by an earlier run that had the same
 * pid (a container restarted): not running.
 */
function holderIsAlive({ pid, host }: Holder): boolean {
  if (host !== hostname()) return true;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function release(lockPath: string, mine: string): void {
  try {
    if (readFileSync(lockPath, 'utf8').trim() === mine) unlinkSync(lockPath);
  } catch {
    // Already gone: nothing to release.
  }
}

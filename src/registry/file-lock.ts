import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';

export interface CatalogLock {
  release(): void;
  /**
   * Before each save: the lock is still this registrar's. Its file gone (the folder was removed,
   * and is made again by the save) is taken again, or a second registrar could start on the file;
   * held by another registrar now, the save must not overwrite what that one wrote: throws.
   */
  confirm(): void;
}

/**
 * Holds `<file>.lock` while a registrar keeps its catalog in `<file>`: two registrars on one file
 * would each overwrite the other's saves, and a registration one of them answered 200 for would
 * be lost. The lock says who holds it (`pid@host`); one left by a registrar that died (kill -9)
 * is taken over, as its process is gone.
 */
export async function lockCatalogFile(file: string, refuse: (message: string) => Error): Promise<CatalogLock> {
  const lockPath = `${file}.lock`;
  const mine = `${process.pid}@${hostname()}`;
  // Bounded: a lock found stale is removed once, and then either taken or held by someone else.
  for (let attempt = 0; attempt < 2; attempt++) {
    if (createLock(lockPath, mine, file, refuse)) {
      // Taken over from a dead registrar: another one starting at the same moment may also have
      // found it stale, and removed ours just after we made it. A moment later, the lock says
      // which of the two holds it.
      if (attempt > 0) {
        await new Promise((resolve) => setTimeout(resolve, TAKEOVER_SETTLE_MS));
        if (readHolderText(lockPath) !== mine) throw refuse(`Cannot lock the catalog file ${file}: another registrar took it over at the same moment`);
      }
      // Once another registrar has held the file, what is in it may be that one's: writing this
      // one's catalog over it, even after the other let go, would lose registrations it answered.
      let ceded: string | undefined;
      return {
        release: () => release(lockPath, mine),
        confirm: () => {
          if (ceded !== undefined) {
            throw refuse(
              `the catalog file ${file} was locked by another registrar (${ceded}) while this one ran: this one no longer writes it, so as not to overwrite what the other saved; ${RESTART_TO_RELOAD}`,
            );
          }
          const holder = readHolderText(lockPath);
          if (holder === mine) return;
          if (holder === undefined && createLock(lockPath, mine, file, refuse)) return;
          ceded = readHolderText(lockPath) ?? 'unknown';
          throw refuse(
            `the catalog file ${file} is now locked by another registrar (${ceded}, per ${lockPath}): this one no longer writes it; stop one of the two`,
          );
        },
      };
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

/** How a refusal says that only a restart helps: the lock went to another registrar while this one ran. */
export const RESTART_TO_RELOAD = 'restart it to load the file again';

interface Holder {
  pid: number;
  host: string;
}

const TAKEOVER_SETTLE_MS = 100;

/** Makes the lock file, holding `mine`; false when there is one already. */
function createLock(lockPath: string, mine: string, file: string, refuse: (message: string) => Error): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw refuse(`Cannot lock the catalog file ${file} (${lockPath}): ${(error as Error).message}`);
  }
  try {
    writeSync(fd, `${mine}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

function readHolderText(lockPath: string): string | undefined {
  try {
    return readFileSync(lockPath, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function readHolder(lockPath: string): Holder | undefined {
  const text = readHolderText(lockPath);
  if (text === undefined) return undefined;
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

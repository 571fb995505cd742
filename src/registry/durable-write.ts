import { readdirSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { makeFolder } from '../make-folder.js';

/**
 * Replaces the file at `path` with `text` so that a crash at any moment leaves the old file or
 * the new one, whole, never a mix; and once this resolves the new one survives a crash of the
 * process or of the machine. It is written to a temporary file beside it and fsynced before the
 * rename (else the rename may reach the disk before the data does), then the folder is fsynced
 * so that the rename itself is on disk. A temporary file that fails is removed.
 */
export async function replaceFileDurably(path: string, text: string): Promise<void> {
  const folder = dirname(path);
  const temp = tempFileFor(path);
  try {
    await writeSynced(temp, text);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    // The folder went away while the process ran: make it again, as at start, rather than
    // refuse every write from now on. A folder that cannot be made is the error.
    makeFolder(folder);
    await writeSynced(temp, text);
  }
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncFolder(folder);
}

async function writeSynced(path: string, text: string): Promise<void> {
  const file = await open(path, 'w');
  let synced = false;
  try {
    await file.writeFile(text);
    await file.sync();
    synced = true;
  } finally {
    await file.close();
    if (!synced) await unlink(path).catch(() => undefined);
  }
}

async function syncFolder(folder: string): Promise<void> {
  let handle;
  try {
    handle = await open(folder, 'r');
    await handle.sync();
  } catch (error) {
    // Some file systems cannot sync a folder; the rename is then as durable as they make it.
    if (!['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    await handle?.close();
  }
}

const tempFileFor = (path: string) => `${path}.${process.pid}.tmp`;

/**
 * Removes the temporary files a process killed in the middle of a save left beside `path`
 * (`<file>.<pid>.tmp`): each is nearly a whole catalog, and crash after crash they would fill the
 * disk. Only for the process that holds the file's lock, so no other one is saving there.
 */
export function removeLeftoverTempFiles(path: string): void {
  const folder = dirname(path);
  const pattern = new RegExp(`^${escapeRegExp(basename(path))}\\.\\d+\\.tmp$`);
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return;
  }
  for (const name of names) {
    if (!pattern.test(name)) continue;
    try {
      unlinkSync(join(folder, name));
    } catch {
      // Gone already, or not ours to remove: the next save does not need it either way.
    }
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

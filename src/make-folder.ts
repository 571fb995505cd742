import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * `mkdir -p`, one level at a time. Node 20's `mkdir(..., { recursive: true })` never returns when
 * the kernel answers ENOENT for a folder whose parent exists (inside /proc or /sys, say): it
 * creates the parent again and retries, forever, at 100% CPU. Here each missing folder is made
 * once, and the first one that cannot be is the error, with its code. `mode` applies to the
 * folders made here only (under the umask): a folder that exists is someone's choice.
 */
export function makeFolder(folder: string, mode?: number): void {
  const missing: string[] = [];
  let current = path.resolve(folder);
  // Bounded by the path's depth: every turn moves one level up, and the root always exists.
  for (;;) {
    try {
      if (!statSync(current).isDirectory()) throw Object.assign(new Error(`${current} is a file, not a folder`), { code: 'ENOTDIR' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    missing.push(current);
    const parent = path.dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const folderToMake of missing.reverse()) {
    try {
      mkdirSync(folderToMake, mode === undefined ? undefined : { mode });
    } catch (error) {
      // Made meanwhile by someone else: that is what was wanted.
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && statSync(folderToMake).isDirectory()) continue;
      throw error;
    }
  }
}
